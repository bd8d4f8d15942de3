"""Models and tokenizers: the tiny Qwen3 configuration, device choice, loading, and ``train-base``.

The default model is the project's own: a byte-level BPE tokenizer and a small Qwen3ForCausalLM
trained (:func:`train_base`) on the procedural corpus of :mod:`aria.apps.shape.corpus`. It is
trained once, on first use, into ``<data_dir>/shape/models/default`` and loaded from there with
``from_pretrained`` like any other checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.utils import logging as transformers_logging

from aria.apps.shape import corpus
from aria.apps.shape.errors import ModelUnavailable, TrainingFailed
from aria.apps.shape.service import RECIPE_FILE, BaseRecipe, is_complete

__all__ = ["RECIPE_FILE", "BaseRecipe", "is_complete", "load_model", "save_model", "train_base"]

# Loading and saving print progress bars to stderr, which would mix with `aria shape` output.
transformers_logging.disable_progress_bar()


def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``, with the corpus' special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(corpus.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=corpus.END_TOKEN,
        pad_token=corpus.PAD_TOKEN,
        additional_special_tokens=[corpus.PROMPT_TOKEN, corpus.SHEET_TOKEN],
    )


def tokenizer_texts(pairs: list[tuple[str | None, dict[str, Any]]]) -> list[str]:
    """What the tokenizer learns from: sheets and prompts, without the special markers."""
    texts = [corpus.serialise(character) for _, character in pairs]
    texts.extend(prompt for prompt, _ in pairs if prompt)
    return texts


def tiny_config(vocab_size: int, tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> Qwen3Config:
    """A small Qwen3 configuration (defaults: the default model's shape); ``overrides`` win."""
    values: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    values.update(overrides)
    return Qwen3Config(**values)


def random_model(config: Qwen3Config, seed: int) -> Qwen3ForCausalLM:
    """A randomly initialised model, the same for the same config and seed."""
    with _seeded(seed):
        model = Qwen3ForCausalLM(config)
    return model.eval()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def select_device(setting: str, threads: int) -> tuple[torch.device, torch.dtype]:
    """The device and dtype for ``setting`` (auto | cpu | cuda); sets CPU torch threads.

    Raises:
        ModelUnavailable: if ``cuda`` is asked for and there is none.
    """
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelUnavailable("shape.device = 'cuda' but torch sees no CUDA device")
        return torch.device("cuda"), torch.bfloat16
    torch.set_num_threads(threads)
    return torch.device("cpu"), torch.float32


def load_model(
    name: str | os.PathLike[str], device: torch.device, dtype: torch.dtype
) -> tuple[Any, PreTrainedTokenizerFast, str]:
    """Load a causal LM and its tokenizer with ``from_pretrained``; return them and a version string.

    ``name`` is a local directory or a hub id (which needs internet). The version is
    ``<name>@<first 12 hex of the weights' sha256>`` for a local directory, ``<id>@<commit>`` for the hub.

    Raises:
        ModelUnavailable: naming ``name`` and the cause when anything cannot be loaded.
    """
    text = os.fspath(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(text)
        model = AutoModelForCausalLM.from_pretrained(text, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"cannot load model {text!r}: {exc}") from exc
    model.to(device).eval()
    if tokenizer.eos_token_id is None:
        raise ModelUnavailable(f"model {text!r}: its tokenizer has no end-of-sequence token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    path = Path(text)
    if path.is_dir():
        digest = hashlib.sha256()
        for weights in sorted(path.glob("*.safetensors")):
            digest.update(weights.read_bytes())
        version = f"{path.name}@{digest.hexdigest()[:12]}"
    else:
        version = f"{text}@{getattr(model.config, '_commit_hash', None) or 'unknown'}"
    return model, tokenizer, version


def train_base(
    out_dir: Path,
    recipe: BaseRecipe,
    *,
    threads: int = 1,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train the default model from ``recipe`` into ``out_dir`` (replaced atomically when done).

    Reproducible: the corpus, the tokenizer, the initial weights and the batch order all follow
    ``recipe.seed``, and one CPU thread gives bit-identical weights. ``progress(step, steps, loss)``
    is called every 10 steps. Returns the recipe and final loss written to ``aria_recipe.json``.

    Raises:
        TrainingFailed: if the loss is not finite or the directory cannot be written.
    """
    torch.set_num_threads(threads)
    started = time.monotonic()
    pairs = corpus.corpus(recipe.seed, recipe.characters)
    tokenizer = build_tokenizer(tokenizer_texts(pairs), recipe.vocab_size)
    ids: list[int] = []
    for prompt, character in pairs:
        ids.extend(tokenizer.encode(corpus.END_TOKEN + corpus.training_text(character, prompt)))
    config = tiny_config(
        len(tokenizer),
        tokenizer,
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        head_dim=recipe.hidden_size // recipe.heads,
    )
    model = random_model(config, recipe.seed).train()
    data = torch.tensor(ids, dtype=torch.long)
    blocks = data[: len(data) // recipe.block_size * recipe.block_size].view(-1, recipe.block_size)
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress_ = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    order = torch.randperm(len(blocks), generator=generator)
    cursor = 0
    loss_value = float("nan")
    for step in range(recipe.steps):
        if cursor + recipe.batch_size > len(order):
            order, cursor = torch.randperm(len(blocks), generator=generator), 0
        batch = blocks[order[cursor : cursor + recipe.batch_size]]
        cursor += recipe.batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise TrainingFailed(f"train-base: loss became {loss_value} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if progress is not None and (step + 1) % 10 == 0:
            progress(step + 1, recipe.steps, loss_value)
    summary = {
        "recipe": asdict(recipe),
        "final_loss": round(loss_value, 4),
        "tokens_seen": recipe.steps * recipe.batch_size * recipe.block_size,
        "corpus_tokens": len(ids),
        "seconds": round(time.monotonic() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    save_model(model.eval(), tokenizer, out_dir, summary)
    return summary


def save_model(model: Any, tokenizer: PreTrainedTokenizerFast, out_dir: Path, recipe: dict[str, Any]) -> None:
    """Write model (safetensors), tokenizer and recipe to ``out_dir`` atomically (temp dir, rename).

    Raises:
        TrainingFailed: if the directory cannot be written.
    """
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except OSError as exc:
        raise TrainingFailed(f"cannot write model to {str(out_dir)!r}: {exc}") from exc


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an inter-process lock (so two processes never train the default model at once)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
