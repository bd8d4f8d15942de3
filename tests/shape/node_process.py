"""A second Aria process running aria_shape against the first node's database.

``python -m tests.shape.node_process DATA_DIR DSN SHAPE_JSON``: boots aria_shape (and its
dependencies) with ``data.engine = external`` and the ``[shape]`` settings of SHAPE_JSON, loads the
model, runs the ``ai_generation`` queue, prints ``ready`` and runs until SIGTERM. DATA_DIR is a
copy of the first node's template, so its aria_security already holds the shared database's
password. The ``shape.generate`` worker is aria_shape's own. Its queue's ``node_timeout`` is 4 s:
generating on two busy cores may hold its heartbeats back for more than the 2 s other tests use.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import trio

import aria


async def main(data_dir: str, dsn: str, shape: dict[str, Any]) -> None:
    config = {
        "node": {"data_dir": data_dir, "name": "second"},
        "log": {"format": "json", "level": "warning"},
        "data": {"engine": "external", "dsn": dsn},
        "queue": {
            "queues": {"ai_generation": 1},
            "poll_interval": 0.1,
            "heartbeat_interval": 0.1,
            "leader_interval": 0.1,
            "node_timeout": 4.0,
        },
        "shape": shape,
    }
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with aria.running(apps=["aria_shape"], config=config):
            await aria.whereis("aria_shape").load()  # torch's first import is no part of the job
            print("ready", flush=True)
            async for _ in signals:
                break


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
