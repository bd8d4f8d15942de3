"""GRPO training runs: their directory, the supervised OS-process child, and the child's main.

A run lives in ``<data_dir>/shape/runs/<name>/``: ``run.json`` (what to train), ``checkpoints/``
(safetensors, see :class:`~aria.apps.shape.grpo.CheckpointStore`), ``metrics.jsonl`` (one line per
step: the reward curve) and, when done, ``model/`` (loadable with ``from_pretrained``, usable as
``shape.model``). The training itself runs in a separate Python process
(``python -m aria.apps.shape.training RUN_DIR``) under :func:`training_child`, so a crash or an
out-of-memory kill never takes the node down; the supervisor restarts it and it resumes from its
newest checkpoint. Each step is printed as a JSON line, which the parent logs and hands to
``on_line`` (the seam for aria_monitor's reward curves).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from aria.apps.shape.errors import ShapeError
from aria.apps.shape.rewards import make_rewards
from aria.apps.shape.settings import ShapeSection
from aria.errors import ChildProcessExited
from aria.supervisor import ChildSpec, Restart, process_child

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
#: Exit status of a child stopped by SIGTERM after it saved a checkpoint (resumable, not finished).
EXIT_INTERRUPTED = 75
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def grpo_settings(settings: ShapeSection, steps: int, seed: int) -> dict[str, Any]:
    """The :class:`~aria.apps.shape.grpo.GRPOConfig` fields from the ``[shape]`` section."""
    return {
        "steps": steps,
        "group_size": settings.grpo_group_size,
        "prompts_per_step": settings.grpo_prompts_per_step,
        "learning_rate": settings.grpo_learning_rate,
        "clip_epsilon": settings.grpo_clip_epsilon,
        "kl_beta": settings.grpo_kl_beta,
        "updates_per_batch": settings.grpo_updates_per_batch,
        "constrained_sampling": settings.grpo_constrained_sampling,
        "max_new_tokens": settings.grpo_max_new_tokens,
        "temperature": settings.temperature,
        "checkpoint_every": settings.grpo_checkpoint_every,
        "seed": seed,
    }


def prepare_run(
    runs_dir: Path,
    name: str,
    *,
    model: str,
    rewards: str,
    grpo: dict[str, Any],
    device: str = "auto",
    torch_threads: int = 1,
    diversity_window: int = 64,
) -> Path:
    """Create run ``name`` (or check that an existing one is the same run) and return its directory.

    Re-preparing an existing run with more steps extends it; anything else that differs is refused,
    so a resumed run never silently changes what it optimises.

    Raises:
        ValueError: for a bad name, unknown rewards, or a run of that name with other settings.
    """
    if not _RUN_NAME.match(name):
        raise ValueError(f"run name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    make_rewards(rewards, diversity_window=diversity_window)  # fails early on unknown rewards
    run_dir = runs_dir / name
    wanted = {
        "model": model,
        "rewards": rewards,
        "grpo": grpo,
        "device": device,
        "torch_threads": torch_threads,
        "diversity_window": diversity_window,
    }
    existing_file = run_dir / RUN_FILE
    if existing_file.exists():
        existing = json.loads(existing_file.read_text())
        same = {k: v for k, v in existing.items() if k != "grpo"} == {
            k: v for k, v in wanted.items() if k != "grpo"
        }
        same_grpo = {k: v for k, v in existing["grpo"].items() if k != "steps"} == {
            k: v for k, v in grpo.items() if k != "steps"
        }
        if not (same and same_grpo):
            raise ValueError(
                f"training run {name!r} exists with other settings ({existing_file}); "
                "choose another --run name or remove that directory"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / f".{RUN_FILE}.partial"
    temporary.write_text(json.dumps(wanted, indent=2) + "\n")
    temporary.rename(existing_file)
    return run_dir


def training_child(
    run_dir: Path,
    *,
    on_line: Callable[[str, str], None] | None = None,
    id: str = "grpo",
    shutdown: float = 60.0,
    env: dict[str, str] | None = None,
    significant: bool = False,
    max_crashes: int = 3,
    before_start: Callable[[], Awaitable[None]] | None = None,
    on_finish: Callable[[str, str], None] | None = None,
) -> ChildSpec:
    """A supervised OS-process child that trains ``run_dir`` to the end (transient).

    ``significant`` lets a supervisor with ``auto_shutdown`` stop when the run is done (the CLI).
    After ``max_crashes`` abnormal exits the run is given up (logged, and the child returns
    normally), so a run that cannot succeed never drives its supervisor to escalate.
    ``before_start`` is awaited before each start of the process (the node restores the newest
    catalogued checkpoint there); ``on_finish(outcome, detail)`` is called once the run's process
    is gone for good: ``("done", "")`` or ``("given up", last error)``.

    Built with :func:`aria.supervisor.process_child`; its start function is wrapped so that exit
    status 0 (the run finished) is a normal exit, which a transient child is not restarted after,
    while a crash, a kill or exit 75 (stopped after a checkpoint) is abnormal and restarts it.
    """
    spec = process_child(
        id,
        [sys.executable, "-m", "aria.apps.shape.training", str(run_dir)],
        env=env,
        on_line=on_line,
        restart=Restart.TRANSIENT,
        shutdown=shutdown,
        significant=significant,
    )

    crashes = 0

    async def run_to_completion(*args: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal crashes
        if before_start is not None:
            await before_start()
        try:
            await spec.start(*args, task_status=task_status)
        except ChildProcessExited as exc:
            if exc.returncode == 0:
                if on_finish is not None:
                    on_finish("done", "")
                return
            crashes += 1
            if crashes >= max_crashes:
                structlog.get_logger("aria_shape").error(
                    "training run given up after repeated crashes (it resumes if started again)",
                    run=run_dir.name,
                    crashes=crashes,
                    last_error=str(exc),
                )
                if on_finish is not None:
                    on_finish("given up", str(exc))
                return
            raise

    return dataclasses.replace(spec, start=run_to_completion)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's step reports, one per step (a step redone after a crash counts once, the last time)."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            by_step[item["step"]] = item
    return [by_step[step] for step in sorted(by_step)]


def run_status(run_dir: Path) -> dict[str, Any]:
    """A summary of a run: target steps, steps done, last reward, checkpoints, final model."""
    from aria.apps.shape.grpo import CheckpointStore

    spec = json.loads((run_dir / RUN_FILE).read_text())
    metrics = read_metrics(run_dir)
    return {
        "run": run_dir.name,
        "steps": spec["grpo"]["steps"],
        "done_steps": metrics[-1]["step"] if metrics else 0,
        "last_reward": metrics[-1]["reward"] if metrics else None,
        "checkpoints": CheckpointStore(run_dir / "checkpoints").steps(),
        "model": str(run_dir / "model") if (run_dir / "model" / "config.json").exists() else None,
    }


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main(argv: list[str] | None = None) -> int:
    """The training child: load, resume, train, save. Returns the process exit status."""
    from aria.apps.shape import decoding
    from aria.apps.shape.grpo import CheckpointStore, GRPOConfig, GRPOTrainer
    from aria.apps.shape.model import load_model, save_model, select_device
    from aria.apps.shape.schema import character_schema

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m aria.apps.shape.training RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    spec = json.loads((run_dir / RUN_FILE).read_text())
    stop_requested = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    device, dtype = select_device(spec["device"], spec["torch_threads"])
    policy, tokenizer, version = load_model(spec["model"], device, dtype)
    reference, _, _ = load_model(spec["model"], device, dtype)
    config = GRPOConfig(**spec["grpo"])
    grammar = None
    if config.constrained_sampling:
        grammar = decoding.Grammars(tokenizer, int(policy.config.vocab_size)).compile(character_schema())
    metrics = (run_dir / METRICS_FILE).open("a")

    def on_step(report: Any) -> None:
        data = report.to_dict()
        metrics.write(json.dumps(data) + "\n")
        metrics.flush()
        _emit("step", **data)

    trainer = GRPOTrainer(
        policy,
        reference,
        tokenizer,
        make_rewards(spec["rewards"], diversity_window=spec["diversity_window"]),
        config,
        checkpoints=CheckpointStore(run_dir / "checkpoints"),
        grammar=grammar,
        on_step=on_step,
        on_checkpoint=lambda step, path: _emit("checkpoint", step=step, path=str(path)),
    )
    resumed = trainer.resume()
    _emit(
        "started", run=run_dir.name, model=version, resumed_from=resumed, steps=config.steps, pid=os.getpid()
    )
    started = time.monotonic()
    while trainer.step < config.steps:
        trainer.train_step()
        last = trainer.step == config.steps
        if stop_requested or last or trainer.step % config.checkpoint_every == 0:
            trainer.save_checkpoint()
        if stop_requested and not last:
            _emit("interrupted", step=trainer.step)
            return EXIT_INTERRUPTED
    save_model(policy, tokenizer, run_dir / "model", {"trained_from": version, "run": run_dir.name, **spec})
    metrics.close()
    _emit(
        "done", step=trainer.step, model=str(run_dir / "model"), seconds=round(time.monotonic() - started, 1)
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ShapeError as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        sys.exit(1)
