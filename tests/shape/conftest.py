"""Tiny models built from config, shared by the shape tests (fixed seeds, one torch thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from aria.apps.shape import corpus, decoding
from aria.apps.shape.model import build_tokenizer, random_model, save_model, tiny_config, tokenizer_texts

needs_xgrammar = pytest.mark.skipif(
    not decoding.grammar_available(),
    reason="xgrammar is not installed (pip install --no-deps xgrammar==0.2.8 apache-tvm-ffi)",
)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained on 300 procedural characters (about a second)."""
    return build_tokenizer(tokenizer_texts(corpus.corpus(seed=7, count=300)), vocab_size=1024)


def tiny_random_model(tokenizer: Any, seed: int = 0) -> Any:
    """A randomly initialised 2-layer Qwen3 (hidden 32): what the grammar must keep valid."""
    config = tiny_config(
        len(tokenizer),
        tokenizer,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    return random_model(config, seed)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """A saved tiny random model with its tokenizer, loadable with ``from_pretrained``."""
    directory = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_random_model(tiny_tokenizer), tiny_tokenizer, directory, {"recipe": "tests: random init"})
    return directory


# ---- a real node (OpenBao, PostgreSQL, every app, the gateway) from a session template ----------

PASSWORD = "correct horse battery staple"
FAST_QUEUE = {
    "poll_interval": 0.1,
    "heartbeat_interval": 0.1,
    "leader_interval": 0.1,
    "node_timeout": 2.0,
    "shutdown_grace": 2.0,
}


def needs_postgres() -> None:
    from aria.apps.data.engines import find_postgres_binaries

    if find_postgres_binaries() is None:
        pytest.skip("PostgreSQL's initdb and postgres are not installed")


def node_config(data_dir: Path, model_dir: Path | None = None, **shape: Any) -> dict[str, dict[str, Any]]:
    """A test node: its own data directory, fast queue timings, the gateway on a free port, and the
    tiny model (``model_dir``) with ``shape`` settings on top."""
    return {
        "node": {"data_dir": str(data_dir)},
        "log": {"format": "json", "level": "warning"},
        "security": {"health_interval": 0.2},
        "data": {"engine": "postgres", "unavailable_timeout": 20.0},
        "queue": dict(FAST_QUEUE),
        "monitor": {"sample_interval": 0.5},
        "coordinate": {"port": 0},
        "shape": {"model": str(model_dir or ""), "device": "cpu", **shape},
    }


@pytest.fixture(scope="session")
def node_template() -> Iterator[Path]:
    """A whole node booted once (every app's migrations applied) with two accounts: ``oper`` may do
    everything, ``reader`` may only read characters and batches."""

    import aria
    from tests.conftest import booted_template

    needs_postgres()

    async def add_test_users() -> None:
        auth = await aria.whereis("aria_auth").get()
        await auth.put_role("operator", ["*:*"], description="tests: everything, without MFA")
        await auth.put_role(
            "shape-reader",
            ["aria_shape.characters:read", "aria_shape.batches:read"],
            description="tests: read characters and batches",
        )
        await auth.add_user("oper", PASSWORD, roles=["operator"])
        await auth.add_user("reader", PASSWORD, roles=["shape-reader"])

    with booted_template(node_config, prepare=add_test_users) as template:
        yield template


@pytest.fixture
def node_dir(node_template: Path) -> Iterator[Path]:
    """A private copy of the template node's data directory."""
    from tests.conftest import copy_of

    with copy_of(node_template) as directory:
        yield directory
