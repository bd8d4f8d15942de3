"""The queue engine of one node: producers claim and run jobs, an acker completes them in batches,
and the leader (one node at a time) stages scheduled jobs, inserts cron jobs, rescues jobs of
silent nodes and prunes old ones.

Concurrency: each queue's producer runs at most ``limit`` jobs at a time on this node. Claims are
conditional UPDATEs in SERIALIZABLE transactions (re-run on 40001), so two nodes never take the
same job; a node also stops a job it is running when the database says the job is no longer its
own (cancelled, or rescued after its heartbeat lapsed).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
import trio
from croniter import croniter
from prometheus_client import Counter, Histogram

from aria.apps.data.api import DataError, SerializationFailure
from aria.apps.queue import store
from aria.apps.queue.errors import JobNotFound, QueueUsageError
from aria.apps.queue.jobs import (
    STATES,
    WORKERS,
    Cancel,
    Discard,
    Job,
    Snooze,
    Unique,
    Worker,
    WorkerRegistry,
    check_priority,
    check_queue_name,
)
from aria.supervisor import shield_until_killed, shutdown_grace

log = structlog.get_logger("aria_queue")

MIGRATIONS = Path(__file__).parent / "migrations"

JOBS_FINISHED = Counter("aria_queue_jobs_total", "Jobs finished by outcome.", ["queue", "worker", "outcome"])
JOB_SECONDS = Histogram("aria_queue_job_duration_seconds", "Time an attempt ran.", ["queue", "worker"])
JOB_WAIT_SECONDS = Histogram(
    "aria_queue_job_wait_seconds",
    "Time from insertion (or scheduled time) to start.",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300),
)


class Producer:
    """Claims and runs the jobs of one queue on this node."""

    def __init__(self, runtime: QueueRuntime, queue: str, limit: int) -> None:
        self.runtime = runtime
        self.queue = queue
        self.limit = limit
        self.paused = False
        self.running: dict[str, trio.CancelScope] = {}
        self._wake = trio.Event()
        self.claimed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, nursery: trio.Nursery) -> None:
        runtime = self.runtime
        while not runtime.draining:
            with trio.move_on_after(runtime.settings.poll_interval):
                await self._wake.wait()
            self._wake = trio.Event()
            while not (self.paused or runtime.draining or runtime.fenced):
                capacity = self.limit - len(self.running)
                if capacity <= 0:
                    break
                try:
                    jobs = await runtime.claim(self.queue, capacity)
                except DataError as exc:
                    log.warning("claiming jobs failed; will retry", queue=self.queue, error=str(exc))
                    break
                for job in jobs:
                    scope = trio.CancelScope()
                    self.running[job.id] = scope
                    nursery.start_soon(self._execute, job, scope)
                self.claimed += len(jobs)
                if len(jobs) < capacity:
                    break

    async def _execute(self, job: Job, scope: trio.CancelScope) -> None:
        runtime = self.runtime
        worker = runtime.workers.get(job.worker)
        began = time.monotonic()
        JOB_WAIT_SECONDS.labels(job.queue).observe(max(0.0, time.time() - job.scheduled_at.timestamp()))
        log.debug("job started", job_id=job.id, worker=job.worker, queue=job.queue, attempt=job.attempt)
        outcome: tuple[str, Any] = ("completed", None)
        # Shielded from the node's graceful stop: a running job gets `shutdown_grace` to finish,
        # and its outcome is recorded; only `scope` (cancel_job, the end of the grace) stops it.
        with shield_until_killed():
            try:
                with scope:
                    if worker is None:
                        outcome = (
                            "discard",
                            f"no worker named {job.worker!r} is registered on {runtime.instance}",
                        )
                    else:
                        outcome = await self._perform(worker, job)
            finally:
                del self.running[job.id]
                self.wake()
            if scope.cancelled_caught:
                if job.id not in runtime.cancelled_here:
                    runtime.release(job)  # stopped by this node (shutting down, fenced): give it back
                return
            JOB_SECONDS.labels(job.queue, job.worker).observe(time.monotonic() - began)
            await runtime.finish(job, worker, outcome)

    async def _perform(self, worker: Worker, job: Job) -> tuple[str, Any]:
        timeout = worker.timeout if worker.timeout is not None else math.inf
        try:
            with trio.move_on_after(timeout) as deadline:
                result = await worker.perform(job)
        except Exception as exc:
            return ("error", _error_entry(job, exc))
        if deadline.cancelled_caught:
            return ("error", _error_entry(job, TimeoutError(f"attempt ran longer than {worker.timeout:g} s")))
        if isinstance(result, Snooze):
            return ("snooze", result.seconds)
        if isinstance(result, Cancel):
            return ("cancel", result.reason)
        if isinstance(result, Discard):
            return ("discard", result.reason)
        return ("completed", None)


def _error_entry(job: Job, exc: BaseException) -> dict[str, Any]:
    return {
        "attempt": job.attempt,
        "at": datetime.now(UTC).isoformat(),
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)),
    }


def unique_key(unique: Unique, worker: str, queue: str, args: Mapping[str, Any]) -> str:
    if unique.key is not None:
        return f"key:{unique.key}"
    parts: dict[str, Any] = {}
    if "worker" in unique.fields:
        parts["worker"] = worker
    if "queue" in unique.fields:
        parts["queue"] = queue
    if "args" in unique.fields:
        parts["args"] = (
            {k: args[k] for k in unique.args_keys if k in args} if unique.args_keys else dict(args)
        )
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class QueueRuntime:
    """aria_queue's running service; ``aria.whereis("aria_queue")`` reaches it (see ``api.py``)."""

    def __init__(
        self, *, database: Any, settings: Any, node: str, engine: str, workers: WorkerRegistry | None = None
    ) -> None:
        self.db = database
        self.settings = settings
        self.node = node
        self.instance = f"{node}/{uuid.uuid4().hex[:12]}"
        self.workers = workers or WORKERS
        self.claim_sql = store.CLAIM_PORTABLE
        if settings.claim == "skip_locked" or (settings.claim == "auto" and engine == "postgres"):
            self.claim_sql = store.CLAIM_SKIP_LOCKED
        self.producers: dict[str, Producer] = {
            check_queue_name(name): Producer(self, name, limit) for name, limit in settings.queues.items()
        }
        self.draining = False
        self.fenced = False  # heartbeats failing: stop claiming, stop running jobs
        self.is_leader = False
        self.cancelled_here: set[str] = set()
        self._acks: list[str] = []
        self._ack_ready = trio.Event()
        self._releases: list[str] = []
        self._last_heartbeat = time.monotonic()
        self._cron = [self._cron_entry(entry) for entry in settings.cron]

    # ---- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.db.migrate("aria_queue", MIGRATIONS)
        await self.db.execute(store.HEARTBEAT, self.instance, self.node)
        async with trio.open_nursery() as background:
            jobs: trio.Nursery
            async with trio.open_nursery() as jobs:
                for producer in self.producers.values():
                    background.start_soon(producer.run, jobs)
                background.start_soon(self._acker)
                background.start_soon(self._heartbeat)
                background.start_soon(self._lead)
                background.start_soon(self._watch_running)
                task_status.started(self)
                log.info(
                    "queues running",
                    instance=self.instance,
                    queues={name: p.limit for name, p in self.producers.items()},
                    claim="skip_locked" if self.claim_sql is store.CLAIM_SKIP_LOCKED else "portable",
                )
                try:
                    await trio.sleep_forever()
                finally:
                    with shutdown_grace():
                        await self._drain(background)

    async def _drain(self, background: trio.Nursery) -> None:
        """Stop claiming, let running jobs finish within ``shutdown_grace``, give back the rest."""
        self.draining = True
        for producer in self.producers.values():
            producer.wake()
        with trio.move_on_after(self.settings.shutdown_grace):
            while any(p.running for p in self.producers.values()):
                await self._acked_or_finished()
        for producer in self.producers.values():
            for scope in producer.running.values():
                scope.cancel()
        while any(p.running for p in self.producers.values()):
            await self._acked_or_finished()
        await self._flush_acks()
        if self.is_leader:
            await self.db.execute(store.RESIGN, self.instance)
        await self.db.execute(store.FORGET_NODE, self.instance)
        background.cancel_scope.cancel()

    async def _acked_or_finished(self) -> None:
        with trio.move_on_after(0.05):
            await self._ack_ready.wait()
        await self._flush_acks()

    # ---- claiming and finishing ---------------------------------------------------------------

    async def claim(self, queue: str, limit: int) -> list[Job]:
        """Take up to ``limit`` available jobs of ``queue`` for this instance. The claim is one
        conditional UPDATE; on a conflict with another claimer (40001) aria_data runs it again."""
        try:
            return store.jobs_from(await self.db.fetch(self.claim_sql, queue, limit, self.instance))
        except SerializationFailure:
            return []  # still contended after every retry: the next poll tries again

    async def finish(self, job: Job, worker: Worker | None, outcome: tuple[str, Any]) -> None:
        kind, detail = outcome
        JOBS_FINISHED.labels(job.queue, job.worker, kind).inc()
        if kind == "completed":
            self._acks.append(job.id)
            if len(self._acks) >= self.settings.ack_batch_size or len(self._acks) == 1:
                self._ack_ready.set()
            return
        try:
            if kind == "error":
                final = job.attempt >= job.max_attempts
                backoff = (worker.backoff if worker else (lambda n: 0.0))(job.attempt)
                level = log.error if final else log.warning
                level(
                    "job failed" if not final else "job discarded after its last attempt",
                    job_id=job.id,
                    worker=job.worker,
                    attempt=job.attempt,
                    error=detail["error"],
                )
                await self.db.execute(
                    store.FAIL,
                    uuid.UUID(job.id),
                    "discarded" if final else "retryable",
                    0.0 if final else backoff,
                    json.dumps([detail]),
                    self.instance,
                )
            elif kind == "discard":
                log.error("job discarded", job_id=job.id, worker=job.worker, reason=detail)
                entry = {"attempt": job.attempt, "at": datetime.now(UTC).isoformat(), "error": detail}
                await self.db.execute(
                    store.FAIL, uuid.UUID(job.id), "discarded", 0.0, json.dumps([entry]), self.instance
                )
            elif kind == "snooze":
                await self.db.execute(store.SNOOZE, uuid.UUID(job.id), float(detail), self.instance)
            elif kind == "cancel":
                entry = {"attempt": job.attempt, "at": datetime.now(UTC).isoformat(), "cancelled": detail}
                await self.db.execute(
                    store.CANCEL_SELF, uuid.UUID(job.id), json.dumps([entry]), self.instance
                )
        except DataError as exc:
            # The job stays `executing` under this instance; if the database does not come back
            # before this node stops, the lifeline of another node gives it a new attempt.
            log.error("recording a job's outcome failed", job_id=job.id, outcome=kind, error=str(exc))

    def release(self, job: Job) -> None:
        """Give a job this node stopped back to the queue (flushed with the next acks)."""
        self._releases.append(job.id)
        self._ack_ready.set()

    async def _acker(self) -> None:
        """Complete finished jobs in batches: one UPDATE per batch instead of one per job."""
        while True:
            await self._ack_ready.wait()
            if len(self._acks) < self.settings.ack_batch_size:
                await trio.sleep(self.settings.ack_flush_interval)  # let the batch fill a little
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        self._ack_ready = trio.Event()
        if self._releases:
            releases, self._releases = self._releases, []
            try:
                await self.db.execute(store.RELEASE, [uuid.UUID(i) for i in releases], self.instance)
            except DataError as exc:  # the lifeline gives them back later
                log.warning("giving back stopped jobs failed", jobs=len(releases), error=str(exc))
        while self._acks:
            batch, self._acks = (
                self._acks[: self.settings.ack_batch_size],
                self._acks[self.settings.ack_batch_size :],
            )
            try:
                await self.db.execute(store.COMPLETE, [uuid.UUID(i) for i in batch], self.instance)
            except DataError as exc:
                log.warning("completing jobs failed; will retry", jobs=len(batch), error=str(exc))
                self._acks = batch + self._acks
                await trio.sleep(0.5)

    # ---- liveness, leadership and the leader's duties ----------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self.settings.heartbeat_interval)
            try:
                await self.db.execute(store.HEARTBEAT, self.instance, self.node)
                self._last_heartbeat = time.monotonic()
                if self.fenced:
                    log.info("heartbeats restored; claiming again", instance=self.instance)
                    self.fenced = False
            except DataError as exc:
                silent = time.monotonic() - self._last_heartbeat
                log.warning("heartbeat failed", error=str(exc), silent_seconds=round(silent, 1))
                if silent > self.settings.node_timeout / 2 and not self.fenced:
                    # Others will soon rescue our jobs; stop them here so none runs twice at once.
                    log.error(
                        "heartbeats lost for too long; stopping this node's jobs", instance=self.instance
                    )
                    self.fenced = True
                    for producer in self.producers.values():
                        for scope in producer.running.values():
                            scope.cancel()

    async def _lead(self) -> None:
        last_prune = -math.inf
        while True:
            try:
                leader = await self.db.fetchval(store.LEAD, self.instance, self.settings.leader_interval * 3)
                if (leader is not None) != self.is_leader:
                    log.info("leadership changed", instance=self.instance, leader=leader is not None)
                self.is_leader = leader is not None
                if self.is_leader:
                    await self._stage()
                    await self._run_cron()
                    await self._rescue()
                    if trio.current_time() - last_prune > self.settings.prune_interval:
                        await self.db.execute(store.PRUNE, self.settings.prune_after)
                        await self.db.execute(store.PRUNE_CRON, max(self.settings.prune_after, 86400.0))
                        last_prune = trio.current_time()
            except SerializationFailure:
                pass  # another node took the same step; the next round sorts it out
            except DataError as exc:
                log.warning("leader duties failed; will retry", error=str(exc))
            await trio.sleep(self.settings.leader_interval)

    async def _stage(self) -> None:
        staged = await self.db.fetch(store.STAGE)
        for queue in {row["queue"] for row in staged}:
            if queue in self.producers:
                self.producers[queue].wake()

    async def _rescue(self) -> None:
        rescued = await self.db.fetch(store.RESCUE, self.settings.node_timeout)
        for row in rescued:
            log.warning("job rescued from a silent node", job_id=str(row["id"]), state=row["state"])
            if row["queue"] in self.producers:
                self.producers[row["queue"]].wake()
        if rescued:
            await self.db.execute(store.FORGET_DEAD_NODES, self.settings.node_timeout * 10)

    def _cron_entry(self, given: Any) -> dict[str, Any]:
        entry: Mapping[str, Any] = given.model_dump() if hasattr(given, "model_dump") else dict(given)
        expression = entry["schedule"]
        if not croniter.is_valid(expression):
            raise QueueUsageError(f"queue.cron: {expression!r} is not a valid cron expression")
        args = dict(entry.get("args", {}))
        name = entry.get("name") or f"{entry['worker']}@{expression}@{json.dumps(args, sort_keys=True)}"
        return {
            "name": name,
            "schedule": expression,
            "worker": entry["worker"],
            "args": args,
            "queue": entry.get("queue"),
        }

    async def _run_cron(self) -> None:
        now = datetime.now(UTC)
        for entry in self._cron:
            tick = croniter(entry["schedule"], now).get_prev(datetime)
            if (now - tick).total_seconds() > max(60.0, self.settings.leader_interval * 5):
                continue  # a tick long gone (this node was not leading then)
            job_id = str(uuid.uuid4())

            async def insert(
                tx: Any, entry: dict[str, Any] = entry, tick: datetime = tick, job_id: str = job_id
            ) -> bool:
                if await tx.fetchval(store.CRON_TICK, entry["name"], tick, uuid.UUID(job_id)) is None:
                    return False
                meta = {"cron": entry["name"], "tick": tick.isoformat()}
                await self.insert(
                    entry["worker"], entry["args"], queue=entry["queue"], tx=tx, job_id=job_id, meta=meta
                )
                return True

            if await self.db.transact(insert):
                log.info("cron job inserted", cron=entry["name"], tick=tick.isoformat())

    async def _watch_running(self) -> None:
        """Stop local jobs the database no longer gives to this instance (cancelled elsewhere,
        or rescued by another node's lifeline)."""
        while True:
            await trio.sleep(self.settings.poll_interval)
            running = {job_id: scope for p in self.producers.values() for job_id, scope in p.running.items()}
            if not running:
                continue
            try:
                stolen = await self.db.fetch(store.STOLEN, [uuid.UUID(i) for i in running], self.instance)
            except DataError:
                continue
            for row in stolen:
                job_id = str(row["id"])
                if job_id in running:
                    log.warning("stopping a job that is no longer this node's", job_id=job_id)
                    self.cancelled_here.add(job_id)
                    running[job_id].cancel()

    # ---- the API ------------------------------------------------------------------------------

    async def insert(
        self,
        worker: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        schedule_in: float | None = None,
        scheduled_at: datetime | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
        unique: Unique | bool | None = None,
        tx: Any = None,
        job_id: str | None = None,
    ) -> Job:
        """Insert a job; returns it (for a unique job that exists already, that job with
        ``conflict=True``). With ``tx`` (an aria_data transaction) the job is inserted in the
        caller's transaction and exists only if it commits.

        Raises:
            QueueUsageError: for bad args, queue, priority or schedule (nothing is stored).
        """
        row, unique_spec = self._prepare(
            worker, args, queue, priority, max_attempts, schedule_in, scheduled_at, tags, meta, unique, job_id
        )

        async def body(transaction: Any) -> Job:
            if unique_spec is not None:
                existing = await transaction.fetchrow(
                    store.FIND_UNIQUE, row[9], list(unique_spec.states), unique_spec.period
                )
                if existing is not None:
                    return Job.from_record(existing, conflict=True)
            return Job.from_record(await transaction.fetchrow(store.INSERT, *row))

        if tx is not None:
            job = await body(tx)
        elif unique_spec is not None:
            job = await self.db.transact(body)
        else:
            job = Job.from_record(await self.db.fetchrow(store.INSERT, *row))
        if job.state == "available" and not job.conflict and job.queue in self.producers:
            self.producers[job.queue].wake()
        return job

    async def insert_all(self, jobs: Sequence[Mapping[str, Any]], *, tx: Any = None) -> int:
        """Insert many jobs at once (one round trip batch, one transaction); each mapping takes
        :meth:`insert`'s keyword names plus ``worker`` and ``args``. Unique options are refused
        here (insert those one by one)."""
        rows = []
        for spec in jobs:
            spec = dict(spec)
            if spec.get("unique"):
                raise QueueUsageError("insert_all does not take unique jobs; insert them with insert()")
            row, _ = self._prepare(
                spec.pop("worker"),
                spec.pop("args", None),
                spec.pop("queue", None),
                spec.pop("priority", None),
                spec.pop("max_attempts", None),
                spec.pop("schedule_in", None),
                spec.pop("scheduled_at", None),
                spec.pop("tags", ()),
                spec.pop("meta", None),
                False,
                None,
            )
            if spec:
                raise QueueUsageError(f"unknown job options {sorted(spec)}")
            rows.append(row)
        insert = store.INSERT.split("RETURNING")[0]
        if tx is not None:
            await tx.executemany(insert, rows)
        else:

            async def body(transaction: Any) -> None:
                await transaction.executemany(insert, rows)

            await self.db.transact(body)
        for queue in {row[2] for row in rows if row[1] == "available"}:
            if queue in self.producers:
                self.producers[queue].wake()
        return len(rows)

    def _prepare(
        self,
        worker: str,
        args: Mapping[str, Any] | None,
        queue: str | None,
        priority: int | None,
        max_attempts: int | None,
        schedule_in: float | None,
        scheduled_at: datetime | None,
        tags: Sequence[str],
        meta: Mapping[str, Any] | None,
        unique: Unique | bool | None,
        job_id: str | None,
    ) -> tuple[tuple[Any, ...], Unique | None]:
        if not isinstance(worker, str) or not worker:
            raise QueueUsageError(f"a job needs a worker name, not {worker!r}")
        definition = self.workers.get(worker)
        args = dict(args or {})
        try:
            json.dumps(args, allow_nan=False)
            json.dumps(dict(meta or {}), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise QueueUsageError(
                f"job args and meta for {worker!r} must be JSON-serialisable: {exc}"
            ) from None
        if schedule_in is not None and scheduled_at is not None:
            raise QueueUsageError("give schedule_in or scheduled_at, not both")
        delay = 0.0
        if schedule_in is not None:
            if not isinstance(schedule_in, int | float) or schedule_in < 0 or math.isnan(schedule_in):
                raise QueueUsageError(f"schedule_in must be seconds >= 0, not {schedule_in!r}")
            delay = float(schedule_in)
        elif scheduled_at is not None:
            if scheduled_at.tzinfo is None:
                raise QueueUsageError("scheduled_at must be timezone-aware")
            delay = (scheduled_at - datetime.now(UTC)).total_seconds()
        queue = check_queue_name(queue or (definition.queue if definition else "default"))
        priority = check_priority(
            priority if priority is not None else (definition.priority if definition else 0)
        )
        attempts = max_attempts
        if attempts is None:
            attempts = definition.max_attempts if definition else self.settings.default_max_attempts
        if not isinstance(attempts, int) or attempts < 1:
            raise QueueUsageError(f"max_attempts must be an integer >= 1, not {attempts!r}")
        unique_spec: Unique | None
        if unique is False:
            unique_spec = None
        elif isinstance(unique, Unique):
            unique_spec = unique
        elif unique in (None, True):
            unique_spec = definition.unique if definition else (Unique() if unique else None)
        else:
            raise QueueUsageError(f"unique must be a Unique, True, False or None, not {unique!r}")
        key = unique_key(unique_spec, worker, queue, args) if unique_spec else None
        row = store.new_job_row(
            worker,
            args,
            queue=queue,
            priority=priority,
            max_attempts=attempts,
            tags=[str(t) for t in tags],
            meta=dict(meta or {}),
            unique_key=key,
            delay=delay,
            job_id=job_id,
        )
        return row, unique_spec

    async def get_job(self, job_id: str) -> Job:
        record = await self.db.fetchrow(store.GET, _uuid(job_id))
        if record is None:
            raise JobNotFound(job_id)
        return Job.from_record(record)

    async def jobs(
        self, *, state: str | None = None, queue: str | None = None, limit: int = 100
    ) -> list[Job]:
        if state is not None and state not in STATES:
            raise QueueUsageError(f"state {state!r} is not one of {', '.join(STATES)}")
        return store.jobs_from(await self.db.fetch(store.LIST, state, queue, limit))

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a job; one executing here stops now, one executing elsewhere at that node's next poll."""
        record = await self.db.fetchrow(store.CANCEL, _uuid(job_id))
        if record is None:
            job = await self.get_job(job_id)  # raises JobNotFound
            raise QueueUsageError(f"job {job_id} is {job.state}; it cannot be cancelled")
        for producer in self.producers.values():
            if job_id in producer.running:
                self.cancelled_here.add(job_id)
                producer.running[job_id].cancel()
        return Job.from_record(record)

    async def retry_job(self, job_id: str) -> Job:
        """Make a finished or waiting job available again now."""
        record = await self.db.fetchrow(store.RETRY, _uuid(job_id))
        if record is None:
            job = await self.get_job(job_id)
            raise QueueUsageError(
                f"job {job_id} is {job.state}; only waiting or finished jobs can be retried"
            )
        job = Job.from_record(record)
        if job.queue in self.producers:
            self.producers[job.queue].wake()
        return job

    async def stats(self) -> dict[str, Any]:
        counts: dict[str, dict[str, int]] = {}
        for row in await self.db.fetch(store.STATS):
            counts.setdefault(row["queue"], {})[row["state"]] = int(row["n"])
        local = {
            name: {"limit": p.limit, "running": len(p.running), "paused": p.paused}
            for name, p in self.producers.items()
        }
        return {"instance": self.instance, "leader": self.is_leader, "jobs": counts, "local": local}

    def pause(self, queue: str) -> None:
        """Stop taking new jobs from ``queue`` on this node (running ones finish)."""
        self._producer(queue).paused = True

    def resume(self, queue: str) -> None:
        producer = self._producer(queue)
        producer.paused = False
        producer.wake()

    def scale(self, queue: str, limit: int) -> None:
        """Change how many jobs of ``queue`` run at once on this node."""
        if not isinstance(limit, int) or limit < 1:
            raise QueueUsageError(f"a queue's limit must be an integer >= 1, not {limit!r}")
        producer = self._producer(queue)
        producer.limit = limit
        producer.wake()

    def _producer(self, queue: str) -> Producer:
        try:
            return self.producers[queue]
        except KeyError:
            raise QueueUsageError(
                f"queue {queue!r} does not run on this node (queues: {', '.join(self.producers)})"
            ) from None

    def status(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "leader": self.is_leader,
            "fenced": self.fenced,
            "queues": {
                n: {"limit": p.limit, "running": len(p.running), "paused": p.paused}
                for n, p in self.producers.items()
            },
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": not self.fenced, **self.status()}


def _uuid(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise QueueUsageError(f"{job_id!r} is not a job id (a UUID)") from None
