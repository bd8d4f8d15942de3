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
