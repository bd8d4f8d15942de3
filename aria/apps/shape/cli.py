"""``aria shape ...``: generate characters, train the default model, run GRPO, check sheets.

Characters go to stdout, one JSON object per line; logs and progress go to stderr (progress only
when stderr is a terminal). These commands work without a running node: they use the same
configuration and data directory as ``aria start``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import trio

_CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="A TOML file on top of the defaults."
)


def _setup(config_file: str | None) -> tuple[Any, Path]:
    import aria.logging
    from aria.config import load
    from aria.errors import ConfigError

    try:
        config = load(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    aria.logging.configure(config.log.level, config.log.format)
    return config, config.data_dir / "shape"


def _fail(command: str, exc: Exception) -> None:
    click.echo(f"aria shape {command}: {exc}", err=True)
    sys.exit(1)


@click.group()
def cli() -> None:
    """Character generation and GRPO training (aria_shape)."""


def _parse_constraints(items: tuple[str, ...]) -> dict[str, Any] | None:
    constraints: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="--constraint")
        values: list[Any] = []
        for part in value.split("|"):
            values.append(int(part) if part.lstrip("-").isdigit() else part)
        constraints[key] = values[0] if len(values) == 1 else values
    return constraints or None


@cli.command()
@click.option("-n", "count", default=1, show_default=True, help="How many characters.")
@click.option(
    "--seed", type=int, default=None, help="Makes the output reproducible (default: random, recorded)."
)
@click.option("--prompt", default=None, help="A free-text request, e.g. 'a proud elf mage'.")
@click.option(
    "--constraint",
    "constraints",
    multiple=True,
    metavar="FIELD=VALUE[|VALUE...]",
    help="Fix or restrict name, pronouns, species, archetype or age (repeatable).",
)
@_CONFIG_OPTION
def generate(
    count: int, seed: int | None, prompt: str | None, constraints: tuple[str, ...], config_file: str | None
) -> None:
    """Print COUNT valid characters, one JSON line each: {"character": ..., "meta": ...}."""
    from aria.apps.shape.api import ShapeError, open_api

    config, data_dir = _setup(config_file)
    api = open_api(config.shape, data_dir)
    show_progress = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show_progress:
            click.echo(f"\r{done}/{total} characters", err=True, nl=done == total)

    try:
        characters = trio.run(
            lambda: api.generate(
                prompt=prompt,
                constraints=_parse_constraints(constraints),
                n=count,
                seed=seed,
                progress=progress,
            )
        )
    except (ShapeError, ValueError, TypeError) as exc:
        _fail("generate", exc)
    for character in characters:
        click.echo(json.dumps(character.to_dict(), ensure_ascii=False))


@cli.command("train-base")
@_CONFIG_OPTION
def train_base(config_file: str | None) -> None:
    """Train the default model (reproducible; a few minutes on 2 CPU cores) unless it exists."""
    from aria.apps.shape.errors import ShapeError
    from aria.apps.shape.model import is_complete
    from aria.apps.shape.service import ShapeService

    config, data_dir = _setup(config_file)
    service = ShapeService(config.shape, data_dir)
    target = service.default_model_dir()
    if is_complete(target):
        click.echo(f"the default model is already trained: {target}", err=True)
        click.echo(str(target))
        return

    def progress(step: int, steps: int, loss: float) -> None:
        click.echo(f"step {step}/{steps}  loss {loss:.3f}", err=True)

    try:
        path = service.ensure_default_model(progress=progress)
    except ShapeError as exc:
        _fail("train-base", exc)
    recipe = json.loads((path / "aria_recipe.json").read_text())
    click.echo(
        f"trained in {recipe['seconds']} s: {recipe['parameters']} parameters, "
        f"final loss {recipe['final_loss']}",
        err=True,
    )
    click.echo(str(path))


@cli.command()
@click.option(
    "--rewards", default="validity,rules,diversity", show_default=True, help="Comma-separated, name[:weight]."
)
@click.option(
    "--steps", type=int, required=True, help="GRPO steps in total (a resumed run continues to this)."
)
@click.option(
    "--run", "run_name", default=None, help="Run name; an existing run resumes (default: a new name)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's prompts and samples.")
@_CONFIG_OPTION
def train(rewards: str, steps: int, run_name: str | None, seed: int, config_file: str | None) -> None:
    """Run GRPO on the configured model in a supervised child process; resume a run by name."""
    import secrets

    from aria.apps.shape.errors import ShapeError
    from aria.apps.shape.rewards import make_rewards
    from aria.apps.shape.service import ShapeService
    from aria.apps.shape.training import grpo_settings, prepare_run, run_status

    config, data_dir = _setup(config_file)
    settings = config.shape
    service = ShapeService(settings, data_dir)
    name = run_name or f"run-{secrets.token_hex(4)}"
    if steps < 1:
        _fail("train", ValueError(f"--steps must be at least 1, not {steps}"))
    try:
        make_rewards(rewards, diversity_window=settings.grpo_diversity_window)  # before any model work
        run_dir = prepare_run(
            service.runs_dir,
            name,
            model=service.model_name(),
            rewards=rewards,
            grpo=grpo_settings(settings, steps, seed),
            device=settings.device,
            torch_threads=settings.torch_threads,
            diversity_window=settings.grpo_diversity_window,
        )
    except (ShapeError, ValueError) as exc:
        _fail("train", exc)
    click.echo(f"training run {name} in {run_dir}", err=True)
    try:
        trio.run(_supervise_training, run_dir)
    except Exception as exc:
        _fail("train", exc)
    status = run_status(run_dir)
    click.echo(json.dumps(status))


async def _supervise_training(run_dir: Path) -> None:
    from aria.apps.shape.training import training_child
    from aria.supervisor import AutoShutdown, Supervisor, open_process_launcher

    def on_line(stream: str, line: str) -> None:
        if stream == "stdout" and line.startswith('{"event": "step"'):
            event = json.loads(line)
            rewards = " ".join(f"{k}={v:.3f}" for k, v in event["rewards"].items())
            click.echo(
                f"step {event['step']}  reward {event['reward']:.3f}  {rewards}  kl {event['kl']:.4f}",
                err=True,
            )

    spec = training_child(run_dir, on_line=on_line, significant=True)
    supervisor = Supervisor(
        [spec], id="shape-train", intensity=3, period=60.0, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT
    )
    with open_process_launcher():
        await supervisor.run()


@cli.command()
@click.argument("source", type=click.File("r"), default="-")
def validate(source: Any) -> None:
    """Check characters (JSON lines, each a sheet or {"character": ...}); name every broken rule."""
    from aria.apps.shape.rules import validate as check

    broken = 0
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as exc:
            click.echo(f"line {number}: not JSON: {exc.msg}")
            broken += 1
            continue
        if isinstance(document, dict) and "character" in document:
            document = document["character"]
        violations = check(document)
        broken += bool(violations)
        for violation in violations:
            click.echo(f"line {number}: {violation}")
    sys.exit(1 if broken else 0)
