"""The ``aria`` command.

``aria start`` runs a node in the foreground; ``aria status``, ``aria stop`` and ``aria events``
talk to a running one through its control socket; ``aria config show`` prints the effective
configuration. Apps add their own command groups (``aria data ...``) from ``aria/apps/<app>/cli.py``,
which are imported only when used.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
import trio

from aria.apps import APP_PACKAGES

_CONFIG_OPTION = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="A TOML file on top of the defaults."
)


class _AppCommands(click.Group):
    """Adds ``aria <app> ...`` for each app that has a ``cli.py``, importing it on first use."""

    def _app_packages(self) -> list[str]:
        base = Path(__file__).parent / "apps"
        return [package for package in APP_PACKAGES if (base / package / "cli.py").exists()]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._app_packages()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._app_packages():
            command = importlib.import_module(f"aria.apps.{name}.cli").cli
        return command


def _load_config(config_file: str | None) -> Any:
    from aria.config import load
    from aria.errors import ConfigError

    try:
        return load(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group(cls=_AppCommands)
@click.version_option(package_name="aria-character-core", prog_name="aria")
def main() -> None:
    """Aria Character Core: generate characters, plan their behaviour, store their assets."""


@main.command()
@click.option("--only", help="Comma-separated apps to boot (their dependencies come along).")
@_CONFIG_OPTION
def start(only: str | None, config_file: str | None) -> None:
    """Boot the node in the foreground; Ctrl-C or SIGTERM stops it in reverse boot order."""
    import aria.logging
    from aria.errors import UsageError
    from aria.system import System

    config = _load_config(config_file)
    aria.logging.configure(config.log.level, config.log.format)
    apps = [name.strip() for name in only.split(",") if name.strip()] if only else None
    try:
        system = System(config, apps)
    except UsageError as exc:
        click.echo(f"aria start: {exc}", err=True)
        sys.exit(2)
    sys.exit(trio.run(_serve, system))


async def _serve(system: Any) -> int:
    from aria.errors import AriaError

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            boot_scope = trio.CancelScope()
            booted = False

            async def handle_signals() -> None:
                received = 0
                async for signum in signals:
                    received += 1
                    name = signal.Signals(signum).name
                    if received == 1:
                        click.echo(f"aria: {name} received, stopping (send it again to kill)", err=True)
                        if booted:
                            system.stop_nowait()
                        else:
                            boot_scope.cancel()
                    else:
                        click.echo(f"aria: {name} received again, killing", err=True)
                        system.kill()

            nursery.start_soon(handle_signals)
            with boot_scope:
                try:
                    await nursery.start(system.run)
                except AriaError as exc:
                    click.echo(f"aria start: {exc}", err=True)
                    nursery.cancel_scope.cancel()
                    return 1
            if boot_scope.cancelled_caught:
                nursery.cancel_scope.cancel()
                return 0
            booted = True
            _print_banner(system)
            await system.wait_stopped()
            nursery.cancel_scope.cancel()
    if system.failure is not None:
        click.echo(f"aria: stopped after a failure: {system.failure}", err=True)
        return 1
    click.echo("aria: stopped", err=True)
    return 0


def _print_banner(system: Any) -> None:
    lines = [
        f"aria is running: {len(system.apps)} apps ready in {system.boot_seconds:.3f} s",
        f"  data dir:       {system.config.data_dir}",
        f"  control socket: {system.config.control_socket}  (aria status, aria stop)",
        *[f"  {line}" for line in system.banner_lines],
        "  stop with Ctrl-C",
    ]
    click.echo("\n".join(lines))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole tree as JSON.")
@_CONFIG_OPTION
def status(as_json: bool, config_file: str | None) -> None:
    """Print the live supervision tree of the running node, one line per child."""
    from aria.control import ControlError, request

    config = _load_config(config_file)
    try:
        tree = request(config.control_socket, "status")["tree"]
    except ControlError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(tree, indent=2))
        return
    uptime = f"{tree['uptime']:.1f} s" if tree["uptime"] is not None else "booting"
    click.echo(f"node {tree['node']}  pid {tree['pid']}  up {uptime}  data dir {tree['data_dir']}")
    for line in format_tree(tree["root"]):
        click.echo(line)


def format_tree(node: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per child: id, state word, kind, restarts, pid, last error."""
    details = [node.get("kind", "supervisor")]
    if node.get("strategy"):
        details.append(node["strategy"])
    if node.get("restarts"):
        details.append(f"restarts={node['restarts']}")
    if node.get("pid"):
        details.append(f"pid={node['pid']}")
    if node.get("last_error"):
        details.append(f"last error: {node['last_error']}")
    label = "  " * depth + node["id"]
    lines = [f"{label:<36} {node['state']:<11} {'  '.join(details)}"]
    for child in node.get("children", []):
        lines.extend(format_tree(child, depth + 1))
    return lines


@main.command()
@_CONFIG_OPTION
def stop(config_file: str | None) -> None:
    """Ask the running node to stop (in reverse boot order)."""
    from aria.control import ControlError, request

    config = _load_config(config_file)
    try:
        request(config.control_socket, "stop")
    except ControlError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo("aria: stopping")


@main.command()
@click.option("--limit", default=50, show_default=True, help="How many recent events.")
@_CONFIG_OPTION
def events(limit: int, config_file: str | None) -> None:
    """Print the recent supervision events (started, exited, restarted, escalated...)."""
    from aria.control import ControlError, request

    config = _load_config(config_file)
    try:
        answer = request(config.control_socket, "events", limit=limit)
    except ControlError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for event in answer["events"]:
        click.echo(f"{event['wall_time']:.3f} {event['kind']:<13} {event['path']}  {event['reason']}")


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@_CONFIG_OPTION
def config_show(as_json: bool, config_file: str | None) -> None:
    """Print the effective configuration (defaults, file, environment), validated."""
    import tomli_w

    loaded = _load_config(config_file)
    data = loaded.to_dict()
    data["node"]["data_dir"] = str(loaded.data_dir)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(tomli_w.dumps(data).rstrip())


if __name__ == "__main__":
    main()
