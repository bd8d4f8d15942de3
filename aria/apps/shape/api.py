"""The Python API of aria_shape: generate and store characters, queue batches, run GRPO training.

Reach it as ``aria.whereis("aria_shape")`` (calls wait through restarts) or, in a script without
a node, build :class:`ShapeApi` from a :class:`~aria.apps.shape.service.ShapeService`::

    shape = aria.whereis("aria_shape")
    characters = await shape.generate(prompt="a proud elf mage", n=3, seed=7)   # stored; ids set
    batch = await shape.submit(prompt="a grim orc", n=200, seed=1)               # ai_generation queue
    done = await shape.wait_for_batch(batch["id"])
    sheets = await shape.results(batch["id"])
    again = await shape.reproduce(sheets[0]["id"])                                # the same character

Model work (loading, training the default model on first use, sampling) is blocking torch code;
it runs in a worker thread (``trio.to_thread``), one call at a time per node, so the trio loop
stays responsive. Cancelling a call stops its sampling at the next token.

On a node, every character made here is stored in aria_data (``aria_shape_batches``,
``aria_shape_characters``) with its model version, parameters, prompt, constraints, seed and index;
without aria_data (a script, the CLI) nothing is stored.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
import trio

from aria.apps.shape import metrics, store
from aria.apps.shape.errors import (
    GenerationFailed,
    GrammarUnavailable,
    ModelUnavailable,
    ShapeError,
    TrainingFailed,
)
from aria.apps.shape.rewards import make_rewards
from aria.apps.shape.rules import RULES, Violation, validate
from aria.apps.shape.schema import SCHEMA_VERSION, character_schema, constrained_schema
from aria.apps.shape.service import ShapeService
from aria.apps.shape.training import grpo_settings, prepare_run, read_metrics, run_status, training_child
from aria.errors import ServiceError
from aria.supervisor import DynamicSupervisor

if TYPE_CHECKING:
    from aria.apps.shape.generator import GeneratedCharacter, GenerationStats, Generator

__all__ = [
    "MAX_BATCH_CHARACTERS",
    "RULES",
    "SCHEMA_VERSION",
    "BatchNotFound",
    "CharacterNotFound",
    "GeneratedCharacter",
    "GenerationFailed",
    "GrammarUnavailable",
    "ModelUnavailable",
    "ShapeApi",
    "ShapeError",
    "TrainingFailed",
    "Violation",
    "character_schema",
    "create_blueprint",
    "validate",
]

T = TypeVar("T")

#: The most characters one queued batch may ask for (it is made and stored chunk by chunk).
MAX_BATCH_CHARACTERS = 10_000
_MAX_SEED = 2**63 - 1
#: Seconds a batch job waits when this node's model is not ready (the default one is untrained).
MODEL_NOT_READY_SNOOZE = 60.0


class BatchNotFound(LookupError):
    """No batch with that id is stored."""


class CharacterNotFound(LookupError):
    """No character with that id is stored."""


class ShapeApi:
    """aria_shape's API handle.

    Args:
        service: Models and paths.
        trainers: Returns the dynamic supervisor training runs are started under (None: training
            is not available from this handle, e.g. in a script; use ``aria shape train``).
        database: aria_data's API (None: nothing is stored, batches are unavailable).
        queue: aria_queue's API (None: batches are unavailable).
        storage: aria_storage's API: training checkpoints are mirrored into its asset catalogue
            (None: they stay in the run's directory only).
        nursery: Where background work runs (mirroring checkpoints); needed with ``storage``.
    """

    implemented = True

    def __init__(
        self,
        service: ShapeService,
        trainers: Callable[[], DynamicSupervisor | None] | None = None,
        *,
        database: Any = None,
        queue: Any = None,
        storage: Any = None,
        nursery: trio.Nursery | None = None,
    ) -> None:
        self.service = service
        self.database = database
        self.queue = queue
        self.storage = storage if nursery is not None else None
        self._nursery = nursery
        self._mirrors: dict[str, trio.MemorySendChannel[tuple[str, int]]] = {}
        self._active_runs: set[str] = set()
        self._starts = 0
        self._trainers = trainers
        self._limiter = trio.CapacityLimiter(1)
        self._progress: dict[str, dict[str, Any]] = {}
        self._finished: dict[str, trio.Event] = {}
        self._batch_finished: dict[str, trio.Event] = {}
        self._log = structlog.get_logger("aria_shape")

    def status(self) -> dict[str, Any]:
        """State for ``aria status`` and the dashboard: model, counts, training runs in progress."""
        generator = self.service.current_generator()
        return {
            "app": "aria_shape",
            "state": "running",
            "implemented": True,
            "schema_version": SCHEMA_VERSION,
            "model": self.service.loaded_model()
            or (self.service.settings.model or "default (not loaded yet)"),
            "model_ready": self.service.model_ready(),
            "stores_characters": self.database is not None,
            "generation": generator.stats.to_dict() if generator is not None else None,
            "training": dict(self._progress),
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "app": "aria_shape", "model_loaded": self.service.loaded_model() is not None}

    def model_ready(self) -> bool:
        """True if generation can start without training the default model first (see the README)."""
        return self.service.model_ready()

    def require_model_ready(self) -> None:
        """Raise unless :meth:`model_ready`: what the routes and queued batches check, since they
        must never start a training of minutes inside a request or a job.

        Raises:
            ModelUnavailable: naming the command that trains the default model.
        """
        if not self.service.model_ready():
            raise ModelUnavailable(
                "the default character model has not been trained yet: run `aria shape train-base` "
                f"(a few minutes; it goes to {self.service.default_model_dir()}) or set shape.model"
            )

    async def load(self) -> str:
        """Load the model now (training the default one if needed); return its version."""
        generator = await self._in_thread(lambda stop: self.service.generator())
        return generator.version

    # ---- generating -------------------------------------------------------------------------------

    async def generate(
        self,
        prompt: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        n: int = 1,
        seed: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        *,
        store: bool = True,
        requested_by: str | None = None,
    ) -> list[GeneratedCharacter]:
        """Generate ``n`` valid characters (and store them, on a node).

        Args:
            prompt: A free-text request (``"a proud elf mage"``), or None.
            constraints: Top-level fields to fix (``{"species": "elf"}``) or restrict
                (``{"archetype": ["mage", "bard"]}``): name, pronouns, species, archetype, age.
            n: How many characters (1..1000).
            seed: Makes the result reproducible with the same model and parameters (0..2**63-1);
                None draws one, which is recorded in each character's ``meta`` so it can be re-run.
            progress: Called as ``progress(done, n)`` from the worker thread.
            store: Store the characters in aria_data as one batch (when this handle has it); each
                character's ``id`` and ``batch`` are set then.
            requested_by: Who asked (recorded with the batch).

        Returns:
            The characters, each with how it was made (see :meth:`GeneratedCharacter.to_dict`).

        Raises:
            ValueError, TypeError: for bad arguments or impossible constraints (before any model work).
            ModelUnavailable, GrammarUnavailable: if the model or xgrammar cannot be loaded.
            GenerationFailed: if a character stays invalid after ``shape.max_attempts`` attempts.
            aria.apps.data.api.DataError: if storing fails (the characters are not returned then).
        """
        seed = _check_request(prompt, constraints, n, seed, limit=1000)

        def work(stop: threading.Event) -> tuple[list[GeneratedCharacter], GenerationStats]:
            return self.service.generator().generate(prompt, constraints, n, seed, progress, stop=stop)

        characters, stats = await self._generate(work, n=n, seed=seed)
        if store and self.database is not None:
            await self._store_direct(characters, prompt, constraints, n, seed, stats, requested_by)
        return characters

    async def stream(
        self,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        prompt: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        n: int = 1,
        seed: int | None = None,
        *,
        requested_by: str | None = None,
    ) -> list[GeneratedCharacter]:
        """:meth:`generate`, reporting each token as it is drawn: the WebSocket route's engine.

        ``await send(event)`` gets, in order of occurrence, ``{"type": "token", "index", "attempt",
        "text"}`` (the sheet's JSON text, piece by piece; a new ``attempt`` of an index starts
        over), ``{"type": "retry", "index", "attempt", "problems"}``, ``{"type": "character",
        "index", "character", "meta"}`` and, last, ``{"type": "done", "batch", "ids", "seed"}`` once
        the characters are stored (``batch`` and ``ids`` are None without aria_data). If ``send``
        fails (the client went away), sampling stops and its error propagates.

        Raises:
            The same as :meth:`generate`.
        """
        from aria.apps.shape.decoding import Stopped

        seed = _check_request(prompt, constraints, n, seed, limit=1000)
        sender, receiver = trio.open_memory_channel[dict[str, Any]](math.inf)

        def on_event(event: dict[str, Any]) -> None:
            try:
                trio.from_thread.run_sync(sender.send_nowait, event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise Stopped("the stream's receiver is gone") from None  # send() failed

        def work(stop: threading.Event) -> tuple[list[GeneratedCharacter], GenerationStats]:
            return self.service.generator().generate(prompt, constraints, n, seed, events=on_event, stop=stop)

        async def forward() -> None:
            async with receiver:
                async for event in receiver:
                    await send(event)

        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward)
            with sender:
                try:
                    characters, stats = await self._generate(work, n=n, seed=seed)
                except Exception as exc:
                    failure = exc  # raised below, not wrapped in the nursery's exception group
        if failure is not None:
            raise failure
        ids: list[str | None] = [None] * n
        batch = None
        if self.database is not None:
            batch = await self._store_direct(characters, prompt, constraints, n, seed, stats, requested_by)
            ids = [made.id for made in characters]
        await send({"type": "done", "batch": batch, "ids": ids, "seed": seed})
        return characters

    async def reproduce(self, character_id: str) -> GeneratedCharacter:
        """Make a stored character again from its record (seed, index, prompt, constraints,
        parameters); with the same model it is the same character. Nothing is stored.

        Raises:
            CharacterNotFound: if there is no such character.
            ModelUnavailable: if the loaded model is not the one that made it.
        """
        record = await self.character(character_id)
        meta = record["meta"]
        batch = await self.batch(meta["batch"])

        def work(stop: threading.Event) -> tuple[list[GeneratedCharacter], GenerationStats]:
            generator = self.service.generator()
            _same_model(generator, meta["model"], f"character {character_id}")
            return generator.generate(
                meta["prompt"],
                meta["constraints"],
                batch["n"],
                meta["seed"],
                indices=[meta["index"]],
                parameters=meta["parameters"],
                stop=stop,
            )

        [made], _ = await self._generate(work, n=1, seed=meta["seed"])
        return made

    # ---- batches on the ai_generation queue -------------------------------------------------------

    async def submit(
        self,
        prompt: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        n: int = 1,
        seed: int | None = None,
        *,
        priority: int = 0,
        requested_by: str | None = None,
    ) -> dict[str, Any]:
        """Queue a batch of ``n`` characters on ``ai_generation``; return the batch (state ``queued``).

        The batch row and its job are written in one transaction. Any node running aria_shape takes
        the job, generates the characters chunk by chunk and stores them; follow it with
        :meth:`batch`, :meth:`wait_for_batch` and :meth:`results`. The batch keeps this node's
        sampling parameters, so whichever node runs it makes the same characters.

        Raises:
            ValueError, TypeError: for bad arguments (nothing is stored).
            ModelUnavailable: if the default model has not been trained yet.
            ShapeError: if this handle has no aria_data or aria_queue.
        """
        database, queue = self._batches()
        seed = _check_request(prompt, constraints, n, seed, limit=MAX_BATCH_CHARACTERS)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
            raise ValueError(f"priority must be an integer from 0 to 9, not {priority!r}")
        self.require_model_ready()
        from aria.apps.shape.jobs import GENERATE_WORKER, GENERATION_QUEUE

        settings = self.service.settings
        from aria.apps.shape.generator import PARAMETERS

        parameters = {name: getattr(settings, name) for name in PARAMETERS}
        batch_id, job_id = uuid.uuid4(), uuid.uuid4()

        async def body(tx: Any) -> dict[str, Any]:
            batch = await store.insert_batch(
                tx,
                batch_id=batch_id,
                kind="queued",
                state="queued",
                prompt=prompt,
                constraints=constraints,
                n=n,
                seed=seed,
                parameters=parameters,
                job_id=job_id,
                requested_by=requested_by,
            )
            await queue.insert(
                GENERATE_WORKER,
                {"batch": str(batch_id)},
                queue=GENERATION_QUEUE,
                priority=priority,
                job_id=str(job_id),
                tx=tx,
            )
            return batch

        batch = await database.transact(body)
        self._log.info("batch queued", batch=batch["id"], n=n, seed=seed, requested_by=requested_by)
        return {**batch, "done": 0}

    async def batch(self, batch_id: str) -> dict[str, Any]:
        """A batch: its request, state (queued, running, completed, failed), model, counts, ``done``
        (characters stored so far) and error.

        Raises:
            BatchNotFound: if there is no such batch (or ``batch_id`` is not a UUID).
        """
        database = self._database()
        try:
            key = store.parse_id(batch_id, "batch")
        except ValueError as exc:
            raise BatchNotFound(str(exc)) from None
        found = await store.get_batch(database, key)
        if found is None:
            raise BatchNotFound(f"no batch {batch_id}")
        return found

    async def results(self, batch_id: str, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """A batch's stored characters in index order (``{"id", "character", "meta"}`` each).

        Raises:
            BatchNotFound: if there is no such batch.
            ValueError: for a bad ``limit`` (1..1000) or ``offset``.
        """
        if not 1 <= limit <= 1000 or offset < 0:
            raise ValueError(f"limit must be 1..1000 and offset >= 0, not {limit} and {offset}")
        await self.batch(batch_id)
        return await store.batch_characters(self._database(), uuid.UUID(batch_id), limit, offset)

    async def character(self, character_id: str) -> dict[str, Any]:
        """One stored character (``{"id", "character", "meta"}``).

        Raises:
            CharacterNotFound: if there is no such character (or the id is not a UUID).
        """
        database = self._database()
        try:
            key = store.parse_id(character_id, "character")
        except ValueError as exc:
            raise CharacterNotFound(str(exc)) from None
        found = await store.get_character(database, key)
        if found is None:
            raise CharacterNotFound(f"no character {character_id}")
        return found

    async def wait_for_batch(self, batch_id: str, poll_interval: float = 0.5) -> dict[str, Any]:
        """Wait until a batch is completed or failed (on any node); return it. Bound it with
        ``trio.fail_after``. A batch run by this node wakes the wait at once; one run elsewhere is
        seen at the next poll.
        """
        while True:
            found = await self.batch(batch_id)
            if found["state"] in ("completed", "failed"):
                self._batch_finished.pop(found["id"], None)
                return found
            event = self._batch_finished.setdefault(found["id"], trio.Event())
            with trio.move_on_after(poll_interval):
                await event.wait()

    async def run_batch(self, batch_id: str) -> Any:
        """Generate and store a queued batch's missing characters: the ``shape.generate`` worker.

        Chunks whose characters are all stored are skipped (a rerun after a crash continues
        where the last run stopped); each chunk is stored in one transaction. Returns None when the
        batch is done, ``Snooze`` while this node's model is not ready, ``Discard`` when retrying
        cannot help (no such batch, a character that stays invalid, another model than the batch
        started with). Other errors (the model cannot be loaded, the database) fail the attempt,
        and the queue retries it.
        """
        from aria.apps.queue.api import Discard, Snooze

        database = self._database()
        try:
            key = store.parse_id(batch_id, "batch")
        except ValueError as exc:
            return Discard(str(exc))
        batch = await store.get_batch(database, key)
        if batch is None:
            return Discard(f"no batch {batch_id}")
        if batch["state"] in ("completed", "failed"):
            return None
        if not self.service.model_ready():
            self._log.warning(
                "a queued batch waits: the default model has not been trained (aria shape train-base)",
                batch=batch_id,
            )
            return Snooze(MODEL_NOT_READY_SNOOZE)
        generator = await self._in_thread(lambda stop: self.service.generator())
        started = await store.start_batch(database, key, generator.version)
        if started is None:
            return None  # finished meanwhile
        try:
            _same_model(generator, started["model"], f"batch {batch_id}")
        except ModelUnavailable as exc:
            await self._finish_batch(key, "failed", {}, str(exc))
            return Discard(str(exc))
        n, seed, parameters = started["n"], started["seed"], started["parameters"]
        size = parameters["batch_size"]
        stored = await store.stored_indices(database, key)
        totals: dict[str, Any] = {"resumed_chunks": 0, "stored_before": len(stored)}
        self._log.info("batch running", batch=batch_id, n=n, stored=len(stored), run=started["runs"])
        for chunk in range(math.ceil(n / size)):
            indices = range(chunk * size, min(n, (chunk + 1) * size))
            if all(index in stored for index in indices):
                totals["resumed_chunks"] += 1
                continue

            def work(
                stop: threading.Event, indices: range = indices
            ) -> tuple[list[GeneratedCharacter], GenerationStats]:
                return generator.generate(
                    started["prompt"],
                    started["constraints"],
                    n,
                    seed,
                    indices=indices,
                    parameters=parameters,
                    stop=stop,
                )

            try:
                characters, stats = await self._generate(work, n=len(indices), seed=seed)
            except (GenerationFailed, ValueError, TypeError) as exc:
                await self._finish_batch(key, "failed", totals, str(exc))
                return Discard(str(exc))
            for name, value in stats.to_dict().items():
                totals[name] = round(totals.get(name, 0) + value, 3)
            await database.transact(store.insert_characters, key, characters)
        await self._finish_batch(key, "completed", totals)
        return None

    async def _finish_batch(
        self, key: uuid.UUID, state: str, stats: Mapping[str, Any], error: str | None = None
    ) -> None:
        await store.finish_batch(self._database(), key, state, stats, error)
        metrics.BATCHES.labels(state).inc()
        self._log.log(
            30 if error else 20, "batch finished", batch=str(key), state=state, error=error, **stats
        )
        self._batch_finished.pop(str(key), trio.Event()).set()

    # ---- internals -------------------------------------------------------------------------------

    def _database(self) -> Any:
        if self.database is None:
            raise ShapeError("characters are not stored here: this aria_shape runs without aria_data")
        return self.database

    def _batches(self) -> tuple[Any, Any]:
        if self.queue is None:
            raise ShapeError("batches need aria_queue, which this aria_shape runs without")
        return self._database(), self.queue

    async def _in_thread(self, work: Callable[[threading.Event], T]) -> T:
        """``work(stop)`` in a worker thread (one at a time); cancelling sets ``stop``, and the
        sampling loop stops at its next token."""
        from aria.apps.shape.decoding import Stopped

        stop = threading.Event()

        async def stop_when_cancelled() -> None:
            try:
                await trio.sleep_forever()
            finally:
                stop.set()

        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_when_cancelled)
            try:
                result = await trio.to_thread.run_sync(work, stop, limiter=self._limiter)
            except Stopped:
                await trio.lowlevel.checkpoint()  # raises Cancelled: the only reason stop is set
                raise
            except Exception as exc:
                failure = exc  # raised below, outside the nursery (which would wrap it in a group)
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result

    async def _generate(
        self,
        work: Callable[[threading.Event], tuple[list[GeneratedCharacter], GenerationStats]],
        *,
        n: int,
        seed: int,
    ) -> tuple[list[GeneratedCharacter], GenerationStats]:
        try:
            characters, stats = await self._in_thread(work)
        except GenerationFailed:
            metrics.FAILURES.inc()
            raise
        metrics.count_generation(stats.to_dict())
        self._log.info("characters generated", n=n, seed=seed, **stats.to_dict())
        return characters, stats

    async def _store_direct(
        self,
        characters: Sequence[GeneratedCharacter],
        prompt: str | None,
        constraints: Mapping[str, Any] | None,
        n: int,
        seed: int,
        stats: GenerationStats,
        requested_by: str | None,
    ) -> str:
        """Store a finished request as a ``direct`` batch with its characters (one transaction)."""
        batch_id = uuid.uuid4()

        async def body(tx: Any) -> None:
            await store.insert_batch(
                tx,
                batch_id=batch_id,
                kind="direct",
                state="completed",
                prompt=prompt,
                constraints=constraints,
                n=n,
                seed=seed,
                parameters=characters[0].parameters,
                model=characters[0].model,
                requested_by=requested_by,
                stats=stats.to_dict(),
            )
            await store.insert_characters(tx, batch_id, characters)

        await self._database().transact(body)
        return str(batch_id)

    async def start_training(self, rewards: str, steps: int, run: str | None = None, seed: int = 0) -> str:
        """Start (or resume) a GRPO run as a supervised OS process; return the run's name.

        The run trains ``shape.model`` (the default model when empty) with ``rewards``
        (``"validity,rules,diversity"``; ``name:weight`` weighs one) for ``steps`` steps, resuming
        from its newest checkpoint if the run exists. Follow it with :meth:`training_status`.

        Raises:
            ValueError: for unknown rewards, a bad name, or an existing run with other settings.
            TrainingFailed: if this handle has no trainers supervisor.
        """
        trainers = self._trainers() if self._trainers is not None else None
        if trainers is None:
            raise TrainingFailed(
                "training is not available here: the app's trainers supervisor is not running"
            )
        if steps < 1:
            raise ValueError(f"steps must be at least 1, not {steps}")
        name = run or f"run-{secrets.token_hex(4)}"
        if name in self._active_runs:
            raise ValueError(f"training run {name!r} is running already")
        settings = self.service.settings
        make_rewards(rewards, diversity_window=settings.grpo_diversity_window)  # before any model work
        model = await trio.to_thread.run_sync(self.service.model_name, limiter=self._limiter)
        run_dir = prepare_run(
            self.service.runs_dir,
            name,
            model=model,
            rewards=rewards,
            grpo=grpo_settings(settings, steps, seed),
            device=settings.device,
            torch_threads=settings.torch_threads,
            diversity_window=settings.grpo_diversity_window,
        )
        self._progress[name] = {"state": "starting", "step": 0, "steps": steps}
        metrics.TRAINING_STEPS.labels(name).set(steps)
        self._finished[name] = trio.Event()
        self._start_mirror(name, run_dir)
        self._active_runs.add(name)
        self._starts += 1  # the process's exit is reported after its last line: ids must not clash
        try:
            await trainers.start_child(
                training_child(
                    run_dir,
                    id=f"grpo-{name}-{self._starts}",
                    on_line=self._on_line(name),
                    before_start=self._restorer(name, run_dir),
                    on_finish=lambda outcome, detail: self._run_finished(name, outcome, detail),
                )
            )
        except BaseException:
            self._active_runs.discard(name)
            raise
        return name

    def _on_line(self, name: str) -> Callable[[str, str], None]:
        def on_line(stream: str, line: str) -> None:
            if stream != "stdout" or not line.startswith("{"):
                return
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                return
            if not isinstance(event, dict):
                return
            metrics.training_event(name, event)
            entry = self._progress.setdefault(name, {})
            kind = event.get("event")
            if kind == "step":
                entry.update(state="training", step=event["step"], reward=event["reward"], kl=event["kl"])
            elif kind == "started":
                entry.update(state="training", resumed_from=event.get("resumed_from", 0))
            elif kind in ("done", "interrupted"):
                entry["state"] = kind
            if kind == "checkpoint":
                self._mirror_event(name, kind, int(event["step"]))

        return on_line

    def _run_finished(self, name: str, outcome: str, detail: str) -> None:
        """The run's process is gone for good (done, or given up after repeated crashes)."""
        self._active_runs.discard(name)
        if outcome != "done":
            self._progress.setdefault(name, {}).update(state=outcome, error=detail)
        metrics.TRAINING_RUNNING.labels(name).set(0)
        self._mirror_event(name, "finished", 0)

    def _start_mirror(self, name: str, run_dir: Path) -> None:
        """Start the task that mirrors run ``name``'s checkpoints into the catalogue (in order,
        then marks the run finished); without it, the run is marked finished when its process ends."""
        previous = self._mirrors.pop(name, None)
        if previous is not None:
            previous.close()
        if self._nursery is None:
            return
        sender, receiver = trio.open_memory_channel[tuple[str, int]](math.inf)
        self._mirrors[name] = sender
        self._nursery.start_soon(self._mirror, name, run_dir, receiver)

    def _mirror_event(self, name: str, kind: str, step: int) -> None:
        sender = self._mirrors.get(name)
        if sender is None:
            if kind == "finished" and name in self._finished:
                self._finished[name].set()
            return
        try:
            sender.send_nowait((kind, step))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._log.warning("a training event arrived after its run's mirror stopped", run=name, event=kind)

    async def _mirror(
        self, name: str, run_dir: Path, receiver: trio.MemoryReceiveChannel[tuple[str, int]]
    ) -> None:
        from aria.apps.shape.checkpoints import CatalogCheckpoints, StorageError
        from aria.apps.shape.grpo import CheckpointStore

        catalog = None
        if self.storage is not None:
            catalog = CatalogCheckpoints(self.storage, name, CheckpointStore(run_dir / "checkpoints"))
        async with receiver:
            async for kind, step in receiver:
                if kind == "finished":  # after every checkpoint line of the run: all were handled
                    if name in self._finished:
                        self._finished[name].set()
                    return
                if catalog is None:
                    continue
                try:
                    uploaded = await catalog.upload(step)
                except (StorageError, ShapeError, ServiceError) as exc:
                    self._log.warning(
                        "a checkpoint was not put into the asset catalogue; it stays in the run's directory",
                        run=name,
                        step=step,
                        error=str(exc),
                    )
                    continue
                if uploaded:
                    self._progress.setdefault(name, {})["catalogued_step"] = step

    def _restorer(self, name: str, run_dir: Path) -> Callable[[], Awaitable[None]]:
        async def restore() -> None:
            if self.storage is None:
                return
            from aria.apps.shape.checkpoints import CatalogCheckpoints, StorageError
            from aria.apps.shape.grpo import CheckpointStore

            catalog = CatalogCheckpoints(self.storage, name, CheckpointStore(run_dir / "checkpoints"))
            try:
                await catalog.restore()
            except (StorageError, ShapeError, ServiceError) as exc:
                self._log.warning(
                    "the newest catalogued checkpoint could not be restored; resuming from local ones",
                    run=name,
                    error=str(exc),
                )

        return restore

    async def wait_for_training(self, run: str) -> dict[str, Any]:
        """Wait until a run started by this handle has finished (and its last checkpoint is in the
        asset catalogue) or was given up; return its :meth:`training_status`.

        Raises:
            ValueError: if this handle did not start ``run``.
        """
        if run not in self._finished:
            raise ValueError(f"training run {run!r} was not started by this node")
        await self._finished[run].wait()
        return await self.training_status(run)

    async def training_status(self, run: str) -> dict[str, Any]:
        """A run's target and reached steps, last reward, checkpoints and final model (if done).

        Raises:
            ValueError: if there is no such run.
        """
        run_dir = self.service.runs_dir / run
        if not (run_dir / "run.json").exists():
            raise ValueError(f"no training run named {run!r} in {self.service.runs_dir}")
        return await trio.to_thread.run_sync(run_status, run_dir)

    async def reward_curve(self, run: str) -> list[dict[str, Any]]:
        """Every step's report of a run (reward per reward function, loss, KL, time)."""
        return await trio.to_thread.run_sync(read_metrics, self.service.runs_dir / run)


def create_blueprint(shape: Any) -> Any:
    """aria_shape's routes (a Quart blueprint; the gateway mounts it at ``/api/v1/shape``).

    ``shape`` is a reference to this API (a ``ServiceRef``). See :mod:`aria.apps.shape.http`.
    """
    from aria.apps.shape.http import create_blueprint as build

    return build(shape)


def _check_request(
    prompt: str | None, constraints: Mapping[str, Any] | None, n: int, seed: int | None, *, limit: int
) -> int:
    """Check a request before any model or database work; return its seed (drawn if None).

    Raises:
        TypeError, ValueError: naming the bad argument.
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if not 1 <= n <= limit:
        raise ValueError(f"n must be 1..{limit}, not {n}")
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string or None, not {type(prompt).__name__}")
    from aria.apps.shape.generator import MAX_PROMPT_CHARACTERS

    if prompt is not None and len(prompt) > MAX_PROMPT_CHARACTERS:
        raise ValueError(f"prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARACTERS} are allowed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be 0..{_MAX_SEED}, not {seed}")
    constrained_schema(constraints)
    return seed


def _same_model(generator: Generator, recorded: str | None, what: str) -> None:
    """Raise unless ``generator`` runs the model version ``recorded`` (None: nothing recorded yet).

    Raises:
        ModelUnavailable: naming both versions.
    """
    if recorded is not None and recorded != generator.version:
        raise ModelUnavailable(
            f"{what} was made with model {recorded}; this node has {generator.version} "
            "(the same seed gives the same characters only with the same model)"
        )


def __getattr__(name: str) -> Any:
    # GeneratedCharacter lives beside torch code; load it only when someone asks for it.
    if name == "GeneratedCharacter":
        from aria.apps.shape.generator import GeneratedCharacter

        return GeneratedCharacter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_api(settings: Any, data_dir: Path) -> ShapeApi:
    """A :class:`ShapeApi` for a script or the CLI, without a running node (no training children)."""
    return ShapeApi(ShapeService(settings, data_dir))
