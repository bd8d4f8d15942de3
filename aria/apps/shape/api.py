"""The Python API of aria_shape: generate characters, start and follow GRPO training runs.

Reach it as ``aria.whereis("aria_shape")`` (calls wait through restarts) or, in a script without
a node, build :class:`ShapeApi` from a :class:`~aria.apps.shape.service.ShapeService`::

    characters = await aria.whereis("aria_shape").generate(prompt="a proud elf mage", n=3, seed=7)

Model work (loading, training the default model on first use, sampling) is blocking torch code;
it runs in a worker thread (``trio.to_thread``), one call at a time per node, so the trio loop
stays responsive. A call that is cancelled waits for the character batch in flight to finish.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

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
from aria.supervisor import DynamicSupervisor

if TYPE_CHECKING:
    from aria.apps.shape.generator import GeneratedCharacter

__all__ = [
    "RULES",
    "SCHEMA_VERSION",
    "GeneratedCharacter",
    "GenerationFailed",
    "GrammarUnavailable",
    "ModelUnavailable",
    "ShapeApi",
    "ShapeError",
    "TrainingFailed",
    "Violation",
    "character_schema",
    "validate",
]


class ShapeApi:
    """aria_shape's API handle.

    Args:
        service: Models and paths.
        trainers: Returns the dynamic supervisor training runs are started under (None: training
            is not available from this handle, e.g. in a script; use ``aria shape train``).
    """

    implemented = True

    def __init__(
        self, service: ShapeService, trainers: Callable[[], DynamicSupervisor | None] | None = None
    ) -> None:
        self.service = service
        self._trainers = trainers
        self._limiter = trio.CapacityLimiter(1)
        self._progress: dict[str, dict[str, Any]] = {}
        self._finished: dict[str, trio.Event] = {}
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
            "generation": generator.stats.to_dict() if generator is not None else None,
            "training": dict(self._progress),
        }

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "app": "aria_shape", "model_loaded": self.service.loaded_model() is not None}

    async def load(self) -> str:
        """Load the model now (training the default one if needed); return its version."""
        generator = await trio.to_thread.run_sync(self.service.generator, limiter=self._limiter)
        return generator.version

    async def generate(
        self,
        prompt: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        n: int = 1,
        seed: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[GeneratedCharacter]:
        """Generate ``n`` valid characters.

        Args:
            prompt: A free-text request (``"a proud elf mage"``), or None.
            constraints: Top-level fields to fix (``{"species": "elf"}``) or restrict
                (``{"archetype": ["mage", "bard"]}``): name, pronouns, species, archetype, age.
            n: How many characters (1..1000).
            seed: Makes the result reproducible with the same model and settings; None draws one,
                which is recorded in each character's ``meta`` so it can be re-run.
            progress: Called as ``progress(done, n)`` from the worker thread.

        Returns:
            The characters, each with how it was made (see :meth:`GeneratedCharacter.to_dict`).

        Raises:
            ValueError: for bad arguments or impossible constraints.
            ModelUnavailable, GrammarUnavailable: if the model or xgrammar cannot be loaded.
            GenerationFailed: if a character stays invalid after ``shape.max_attempts`` attempts.
        """
        if seed is None:
            seed = secrets.randbelow(2**31)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        constrained_schema(constraints)  # bad constraints fail before any model work

        def work() -> list[GeneratedCharacter]:
            characters, stats = self.service.generator().generate(prompt, constraints, n, seed, progress)
            self._log.info("characters generated", n=n, seed=seed, **stats.to_dict())
            return characters

        return await trio.to_thread.run_sync(work, limiter=self._limiter)

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
        self._finished[name] = trio.Event()
        await trainers.start_child(training_child(run_dir, id=f"grpo-{name}", on_line=self._on_line(name)))
        return name

    def _on_line(self, name: str) -> Callable[[str, str], None]:
        def on_line(stream: str, line: str) -> None:
            if stream != "stdout" or not line.startswith("{"):
                return
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                return
            entry = self._progress.setdefault(name, {})
            kind = event.get("event")
            if kind == "step":
                entry.update(state="training", step=event["step"], reward=event["reward"], kl=event["kl"])
            elif kind in ("done", "interrupted", "started"):
                entry["state"] = {"started": "training"}.get(kind, kind)
            if kind == "done" and name in self._finished:
                self._finished[name].set()

        return on_line

    async def wait_for_training(self, run: str) -> dict[str, Any]:
        """Wait until a run started by this handle has finished; return its :meth:`training_status`.

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


def __getattr__(name: str) -> Any:
    # GeneratedCharacter lives beside torch code; load it only when someone asks for it.
    if name == "GeneratedCharacter":
        from aria.apps.shape.generator import GeneratedCharacter

        return GeneratedCharacter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_api(settings: Any, data_dir: Path) -> ShapeApi:
    """A :class:`ShapeApi` for a script or the CLI, without a running node (no training children)."""
    return ShapeApi(ShapeService(settings, data_dir))
