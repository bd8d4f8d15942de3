"""aria_queue's errors (re-exported by ``api.py``).

* ``QueueError`` (an ``AriaError``)

  * ``JobNotFound``: no job with that id.
  * ``QueueUsageError`` (also a ``ValueError``): a bad worker, queue, priority, schedule or args;
    raised before anything is stored.
"""

from __future__ import annotations

from aria.errors import AriaError


class QueueError(AriaError):
    """Base class of aria_queue's errors."""


class JobNotFound(QueueError, LookupError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class QueueUsageError(QueueError, ValueError):
    """A job or worker definition is not acceptable."""
