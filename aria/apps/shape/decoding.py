"""Sampling from a causal LM, with or without a JSON-Schema grammar (xgrammar).

One loop serves generation and GRPO: a batch of rows that share a prompt, each with its own
``torch.Generator`` seeded per row, so a row's tokens depend only on its seed (not on the batch
around it). Under a grammar, xgrammar's matcher masks every token that would leave the schema, and
the end-of-sequence token is allowed only once the JSON document is complete; so a finished row is
schema-valid by construction. A row that runs out of ``max_new_tokens`` is reported as unfinished.
"""

from __future__ import annotations

import inspect
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from aria.apps.shape.errors import GrammarUnavailable

try:  # xgrammar is installed without its dependencies (see the README): it must stay optional here
    import xgrammar
except ImportError:  # pragma: no cover - exercised only where xgrammar is absent
    xgrammar = None


class Stopped(Exception):
    """Sampling was stopped from outside (its ``stop`` event was set) before every row finished."""


def grammar_available() -> bool:
    """True if xgrammar can be imported."""
    return xgrammar is not None


def marker_token_ids(tokenizer: Any) -> list[int]:
    """The tokenizer's special tokens other than the end token: never part of a sheet."""
    return sorted(set(tokenizer.all_special_ids) - {tokenizer.eos_token_id})


@dataclass
class Sample:
    """One sampled row: its new tokens (end token excluded), their text, and whether it finished."""

    token_ids: list[int]
    text: str
    finished: bool
    seed: int
    masks: list[torch.Tensor] = field(default_factory=list, repr=False)


class Grammars:
    """Compiles JSON Schemas into xgrammar grammars for one tokenizer, caching by schema.

    Raises:
        GrammarUnavailable: at construction if xgrammar is not installed.
    """

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        if xgrammar is None:
            raise GrammarUnavailable(
                "constrained decoding needs xgrammar: pip install --no-deps xgrammar==0.2.8 apache-tvm-ffi "
                "(or set shape.constrained = false)"
            )
        self.vocab_size = vocab_size
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgrammar.GrammarCompiler(info)
        self._cache: dict[str, Any] = {}

    def compile(self, schema: Mapping[str, Any]) -> Any:
        """The compiled grammar of ``schema``: compact JSON, keys in schema order."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        return self._cache[key]


@torch.no_grad()
def sample(
    model: Any,
    prompt_ids: Sequence[int],
    seeds: Sequence[int],
    *,
    eos_token_id: int,
    pad_token_id: int,
    decode: Any,
    grammar: Any | None = None,
    vocab_size: int | None = None,
    max_new_tokens: int = 512,
    temperature: float = 1.0,
    keep_masks: bool = False,
    banned_token_ids: Sequence[int] = (),
    on_step: Callable[[list[tuple[int, int]]], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Sample]:
    """Sample one completion of ``prompt_ids`` per seed.

    Args:
        model: A causal LM that takes a ``DynamicCache``.
        prompt_ids: The shared prompt.
        seeds: One seed per row; the row's tokens depend only on it (and the model and prompt).
        eos_token_id, pad_token_id: End token, and the filler fed to rows that have finished.
        decode: ``decode(token_ids) -> str``.
        grammar: A compiled xgrammar grammar, or None for unconstrained sampling.
        vocab_size: The model's vocabulary size (for the grammar's bitmask).
        max_new_tokens: Budget per row; a row that reaches it is unfinished.
        temperature: Softmax temperature.
        keep_masks: Keep each step's grammar bitmask (GRPO recomputes log-probs under it).
        banned_token_ids: Tokens never sampled (the tokenizer's markers other than the end token:
            a grammar would otherwise admit ``<|prompt|>`` inside a string as its literal text).
        on_step: Called after each decoding step with the ``(row, token)`` pairs drawn in it (end
            tokens excluded): the seam of token streaming.
        stop: Checked before each step; once set, sampling raises :class:`Stopped`.

    Raises:
        Stopped: if ``stop`` was set.
    """
    rows = len(seeds)
    device = next(model.parameters()).device
    generators = [torch.Generator().manual_seed(int(seed) % (2**63)) for seed in seeds]
    matchers = [xgrammar.GrammarMatcher(grammar) for _ in range(rows)] if grammar is not None else None
    bitmask = xgrammar.allocate_token_bitmask(rows, vocab_size) if grammar is not None else None
    tokens: list[list[int]] = [[] for _ in range(rows)]
    masks: list[list[torch.Tensor]] = [[] for _ in range(rows)]
    done = [False] * rows
    finished = [False] * rows
    cache = DynamicCache()
    cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    input_ids = torch.tensor([list(prompt_ids)] * rows, dtype=torch.long, device=device)
    banned = torch.tensor(sorted(set(banned_token_ids)), dtype=torch.long)
    banned_words = _allowed_words(vocab_size, banned) if grammar is not None and vocab_size else None
    for _ in range(max_new_tokens):
        if stop is not None and stop.is_set():
            raise Stopped(f"sampling stopped after {max(map(len, tokens))} tokens")
        logits = model(input_ids=input_ids, use_cache=True, **{cache_argument: cache}).logits[:, -1, :]
        logits = logits.float().cpu()
        if matchers is not None:
            for row, matcher in enumerate(matchers):
                if not done[row]:
                    matcher.fill_next_token_bitmask(bitmask, row)
            xgrammar.apply_token_bitmask_inplace(logits, bitmask, vocab_size=vocab_size)
        if len(banned):
            logits[:, banned] = -math.inf
            if bitmask is not None:
                bitmask &= banned_words  # so that kept masks (GRPO) show what could really be drawn
        probabilities = torch.softmax(logits / temperature, dim=-1)
        next_ids = []
        drawn: list[tuple[int, int]] = []
        for row in range(rows):
            if done[row]:
                next_ids.append(pad_token_id)
                continue
            token = int(torch.multinomial(probabilities[row], 1, generator=generators[row]))
            if keep_masks and bitmask is not None:
                masks[row].append(bitmask[row].clone())
            if matchers is not None and not matchers[row].accept_token(token):
                done[row] = True  # cannot happen with a correct mask; treated as an unfinished row
                next_ids.append(pad_token_id)
                continue
            if token == eos_token_id:
                done[row] = finished[row] = True
            else:
                tokens[row].append(token)
                drawn.append((row, token))
            next_ids.append(token)
        if on_step is not None and drawn:
            on_step(drawn)
        if all(done):
            break
        input_ids = torch.tensor(next_ids, dtype=torch.long, device=device).unsqueeze(1)
    return [
        Sample(tokens[row], decode(tokens[row]), finished[row], int(seeds[row]), masks[row])
        for row in range(rows)
    ]


def _allowed_words(vocab_size: int, banned: torch.Tensor) -> torch.Tensor:
    """An xgrammar-style bitmask row (int32 words, bit i of word w = token 32 * w + i) without ``banned``."""
    words = (vocab_size + 31) // 32
    allowed = torch.ones(words * 32, dtype=torch.int64)
    allowed[banned] = 0
    packed = (allowed.view(words, 32) << torch.arange(32, dtype=torch.int64)).sum(dim=1)
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)
