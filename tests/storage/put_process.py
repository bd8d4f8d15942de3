"""A second Aria process that ``test_catalog``'s kill -9 test kills in the middle of a put.

``python -m tests.storage.put_process BASE DSN PASSWORD STORE``: stores the shared database's
password in its own aria_security (under BASE), boots aria_storage against that database (engine
external) with STORE as its chunk store, puts the asset ``whole`` (prints ``whole <caid>``), then
starts putting ``partial`` from a stream that sends 4 MiB and then never ends. Once that upload has
announced chunks (so it is writing them), it prints ``announced <n>`` and waits to be killed.
"""

from __future__ import annotations

import random
import sys

import trio

import aria
from aria.apps.security.api import AppSecrets

MIB = 1 << 20


def content(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class EndlessStream:
    """4 MiB of content in 256 KiB pieces, then a wait that never ends."""

    def __init__(self) -> None:
        self.data = content(2, 4 * MIB)
        self.offset = 0

    def __aiter__(self) -> EndlessStream:
        return self

    async def __anext__(self) -> bytes:
        if self.offset >= len(self.data):
            await trio.sleep_forever()
        piece = self.data[self.offset : self.offset + 256 * 1024]
        self.offset += len(piece)
        return piece


async def main(base: str, dsn: str, password: str, store: str) -> None:
    node = {"node": {"data_dir": base, "name": "writer"}, "log": {"format": "json", "level": "warning"}}
    async with aria.running(apps=["aria_security"], config=node):
        await AppSecrets(aria.whereis("aria_security"), "aria_data").put_secret(
            "db/password", {"value": password}
        )
    config = {**node, "data": {"engine": "external", "dsn": dsn}, "storage": {"store": store}}
    async with aria.running(apps=["aria_storage"], config=config):
        storage = aria.whereis("aria_storage")
        whole = await storage.put_asset("whole", content(1, 2 * MIB))
        print(f"whole {whole.caid}", flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: storage.put_asset("partial", EndlessStream()))
            db = aria.whereis("aria_data")
            announced = "SELECT count(*) FROM aria_storage_upload_chunks"
            while (count := await db.fetchval(announced)) == 0:  # noqa: ASYNC110 - rows in the database
                await trio.sleep(0.05)
            print(f"announced {count}", flush=True)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
