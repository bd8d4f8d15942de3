"""A second Aria process for the queue's multi-node tests.

``python -m tests.queue.node_process DATA_DIR DSN PASSWORD QUEUES_JSON``: stores the password of
the shared database, boots aria_queue against it (engine external), and runs its queues. On SIGTERM
it stops gracefully and prints the ids of the jobs its workers ran as one JSON line; `test.slow`
prints ``started <id>`` and then never finishes.
"""

from __future__ import annotations

import json
import signal
import sys

import trio

import aria
from aria.apps.queue.api import Job, worker
from aria.apps.security.api import AppSecrets

RAN: list[str] = []


@worker("test.count")
async def count(job: Job) -> None:
    RAN.append(job.id)


@worker("test.slow", queue="rescue", max_attempts=3)
async def slow(job: Job) -> None:
    print(f"started {job.id}", flush=True)
    await trio.sleep_forever()


async def main(data_dir: str, dsn: str, password: str, queues: dict[str, int]) -> None:
    base = {"node": {"data_dir": data_dir, "name": "second"}, "log": {"format": "json", "level": "warning"}}
    async with aria.running(apps=["aria_security"], config=base):
        await AppSecrets(aria.whereis("aria_security"), "aria_data").put_secret(
            "db/password", {"value": password}
        )
    config = {
        **base,
        "data": {"engine": "external", "dsn": dsn},
        "queue": {
            "queues": queues,
            "poll_interval": 0.1,
            "heartbeat_interval": 0.1,
            "leader_interval": 0.1,
            "node_timeout": 2.0,
            "shutdown_grace": 1.0,
        },
    }
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with aria.running(apps=["aria_queue"], config=config):
            print("ready", flush=True)
            async for _ in signals:
                break
    print(json.dumps(RAN), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
