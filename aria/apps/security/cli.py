"""``aria security status|seal|unseal``: operate the running node's OpenBao."""

from __future__ import annotations

import getpass
import json
import sys

import click

from aria.config import load
from aria.control import ControlError, request


def _socket(config_file: str | None) -> object:
    return load(config_file).control_socket


def _call(config_file: str | None, op: str, **args: object) -> dict[str, object]:
    try:
        return request(_socket(config_file), op, **args)  # type: ignore[arg-type]
    except ControlError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


_config = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML config file.")


@click.group()
def cli() -> None:
    """Secrets and encryption: OpenBao's seal state."""


@cli.command()
@_config
def status(config_file: str | None) -> None:
    """Print OpenBao's state: initialized, sealed, version, raft leader."""
    click.echo(json.dumps(_call(config_file, "security.status")["status"], indent=2))


@cli.command()
@_config
def seal(config_file: str | None) -> None:
    """Seal OpenBao now; every secret is unreachable until `aria security unseal`."""
    _call(config_file, "security.seal")
    click.echo("OpenBao sealed")


@cli.command()
@click.option(
    "--share", "shares", multiple=True, help="An unseal key share (repeat); prompted for if omitted."
)
@click.option("--threshold", default=2, show_default=True, help="How many shares to prompt for.")
@_config
def unseal(shares: tuple[str, ...], threshold: int, config_file: str | None) -> None:
    """Unseal OpenBao with key shares (typed without echo unless given with --share)."""
    given = list(shares) or [getpass.getpass(f"unseal share {n + 1}/{threshold}: ") for n in range(threshold)]
    answer = _call(config_file, "security.unseal", shares=given)
    click.echo(json.dumps(answer["status"], indent=2))
