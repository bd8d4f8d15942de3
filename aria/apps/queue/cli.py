"""``aria queue stats | jobs | retry ID | cancel ID`` on the running node."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from aria.config import load
from aria.control import ControlError, request

_config = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML config file.")


def _call(config_file: str | None, op: str, **args: Any) -> dict[str, Any]:
    try:
        return request(load(config_file).control_socket, op, **args)
    except ControlError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


@click.group()
def cli() -> None:
    """Background jobs: counts, listings, retry and cancel."""


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@_config
def stats(as_json: bool, config_file: str | None) -> None:
    """Jobs per queue and state, and this node's queues."""
    result = _call(config_file, "queue.stats")["stats"]
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"instance {result['instance']}{'  (leader)' if result['leader'] else ''}")
    for queue, counts in sorted(result["jobs"].items()):
        click.echo(f"  {queue:<16} " + "  ".join(f"{state}={n}" for state, n in sorted(counts.items())))
    for queue, local in sorted(result["local"].items()):
        paused = "  paused" if local["paused"] else ""
        click.echo(f"  {queue:<16} running {local['running']}/{local['limit']} here{paused}")


@cli.command()
@click.option("--state", help="available, scheduled, executing, retryable, completed, discarded, cancelled")
@click.option("--queue", help="a queue name")
@click.option("--limit", default=50, show_default=True)
@_config
def jobs(state: str | None, queue: str | None, limit: int, config_file: str | None) -> None:
    """List jobs, newest first."""
    for job in _call(config_file, "queue.jobs", state=state, queue=queue, limit=limit)["jobs"]:
        error = f"  last error: {job['errors'][-1].get('error', '')}" if job["errors"] else ""
        click.echo(
            f"{job['id']}  {job['state']:<10} {job['queue']:<14} {job['worker']:<24} "
            f"attempt {job['attempt']}/{job['max_attempts']}{error}"
        )


@cli.command()
@click.argument("job_id")
@_config
def retry(job_id: str, config_file: str | None) -> None:
    """Make a finished or waiting job available again."""
    job = _call(config_file, "queue.retry", job_id=job_id)["job"]
    click.echo(f"{job['id']} is {job['state']}")


@cli.command()
@click.argument("job_id")
@_config
def cancel(job_id: str, config_file: str | None) -> None:
    """Cancel a job (a running one is stopped)."""
    job = _call(config_file, "queue.cancel", job_id=job_id)["job"]
    click.echo(f"{job['id']} is {job['state']}")
