"""``aria data migrate --status | backup FILE | restore FILE | psql | set-password``."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

import click
import trio

from aria.config import load
from aria.control import ControlError, request

_config = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML config file.")


def _call(config_file: str | None, op: str, **args: Any) -> dict[str, Any]:
    try:
        return request(load(config_file).control_socket, op, timeout=3600.0, **args)
    except ControlError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


@click.group()
def cli() -> None:
    """The database: migrations, backups, a SQL shell."""


@cli.command()
@click.option("--status", "show_status", is_flag=True, help="List every app's migrations and their state.")
@_config
def migrate(show_status: bool, config_file: str | None) -> None:
    """Migrations run when each app starts; --status lists them (applied, pending, changed)."""
    if not show_status:
        click.echo("migrations are applied when each app starts (aria start); use --status to list them")
        return
    rows = _call(config_file, "data.migrations")["migrations"]
    for row in rows:
        click.echo(f"{row['app']:<16} {row['name']:<32} {row['state']:<13} {row['applied_at'] or ''}")
    if not rows:
        click.echo("no migrations")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_config
def backup(file: str, config_file: str | None) -> None:
    """Write a backup of the aria database to FILE (pg_dump custom format on PostgreSQL)."""
    path = str(Path(file).resolve())
    _call(config_file, "data.backup", path=path)
    click.echo(f"backup written to {path}")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_config
def restore(file: str, yes: bool, config_file: str | None) -> None:
    """Replace the aria database's contents with the backup in FILE."""
    if not yes:
        click.confirm(f"Replace the database's contents with {file}?", abort=True)
    _call(config_file, "data.restore", path=str(Path(file).resolve()))
    click.echo("restored")


@cli.command()
@_config
def psql(config_file: str | None) -> None:
    """Open psql on the running node's database, as the aria role."""
    answer = _call(config_file, "data.connection")
    os.execve(answer["args"][0], answer["args"], {**os.environ, "PGPASSWORD": answer["password"]})


@cli.command("set-password")
@_config
def set_password(config_file: str | None) -> None:
    """Store the password of an external database in aria_security (run it before `aria start`)."""
    import aria
    from aria.apps.security.api import AppSecrets

    password = getpass.getpass("password of the external database's user: ")
    if not password:
        click.echo("no password given", err=True)
        sys.exit(2)

    async def store() -> None:
        async with aria.running(apps=["aria_security"], config=load(config_file)):
            await AppSecrets(aria.whereis("aria_security"), "aria_data").put_secret(
                "db/password", {"value": password}
            )

    trio.run(store)
    click.echo("stored in aria_security (apps/aria_data/db/password)")
