"""From a prompt to valid characters: constrained sampling, the rule validator, repair or regenerate.

A character's tokens follow from ``(request seed, index, attempt)`` alone, so the same seed with
the same model and settings gives the same characters, whatever else runs in the batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aria.apps.shape import corpus, decoding
from aria.apps.shape.errors import GenerationFailed
from aria.apps.shape.rules import repair, rule_violations
from aria.apps.shape.schema import SCHEMA_VERSION, constrained_schema, schema_errors
from aria.apps.shape.settings import ShapeSection

MAX_PROMPT_CHARACTERS = 200
MAX_CHARACTERS_PER_CALL = 1000


def row_seed(seed: int, index: int, attempt: int) -> int:
    """The sampling seed of attempt ``attempt`` at character ``index`` of a request with ``seed``."""
    digest = hashlib.sha256(f"aria-shape/{seed}/{index}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


@dataclass
class GenerationStats:
    """Counts since the generator was made (or per call, in each result's ``meta``)."""

    characters: int = 0
    attempts: int = 0
    valid_first_try: int = 0
    repaired: int = 0
    regenerated: int = 0
    truncated: int = 0
    schema_invalid: int = 0
    rule_invalid: int = 0
    failed: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, other: GenerationStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class GeneratedCharacter:
    """A valid character and how it was made (enough to make it again)."""

    character: dict[str, Any]
    seed: int
    index: int
    attempts: int
    repaired_rules: list[str]
    model: str
    parameters: dict[str, Any]
    prompt: str | None
    constraints: dict[str, Any] | None
    tokens: int

    def to_dict(self) -> dict[str, Any]:
        """``{"character": ..., "meta": {...}}``: what ``aria shape generate`` prints per line."""
        return {
            "character": self.character,
            "meta": {
                "schema_version": SCHEMA_VERSION,
                "model": self.model,
                "seed": self.seed,
                "index": self.index,
                "attempts": self.attempts,
                "repaired_rules": self.repaired_rules,
                "prompt": self.prompt,
                "constraints": self.constraints,
                "parameters": self.parameters,
                "tokens": self.tokens,
            },
        }


@dataclass
class _Attempt:
    index: int
    attempt: int
    problems: list[str] = field(default_factory=list)


class Generator:
    """Generates characters with one loaded model (not thread-safe: one call at a time).

    Args:
        model, tokenizer: A causal LM and its tokenizer.
        version: The model's version string (recorded with every character).
        settings: The ``[shape]`` section (sampling, attempts, repair policy, constraint on/off).
    """

    def __init__(self, model: Any, tokenizer: Any, version: str, settings: ShapeSection) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.version = version
        self.settings = settings
        self.vocab_size = int(model.config.vocab_size)
        self.grammars = decoding.Grammars(tokenizer, self.vocab_size) if settings.constrained else None
        self.stats = GenerationStats()
        self.banned = decoding.marker_token_ids(tokenizer)

    def prompt_ids(self, prompt: str | None) -> list[int]:
        """The token ids the model starts from for ``prompt``."""
        return list(
            self.tokenizer.encode(corpus.END_TOKEN + corpus.prompt_text(prompt), add_special_tokens=False)
        )

    def generate(
        self,
        prompt: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        n: int = 1,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[list[GeneratedCharacter], GenerationStats]:
        """``n`` valid characters for ``prompt`` under ``constraints``, and the counts of this call.

        Raises:
            ValueError: for a bad ``n``, an over-long prompt or an impossible constraint.
            GenerationFailed: if a character is still invalid after ``max_attempts`` attempts.
        """
        if not 1 <= n <= MAX_CHARACTERS_PER_CALL:
            raise ValueError(f"n must be 1..{MAX_CHARACTERS_PER_CALL}, not {n}")
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARACTERS:
            raise ValueError(
                f"prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARACTERS} are allowed"
            )
        schema = constrained_schema(constraints)  # validates the constraints
        locked = dict(constraints or {})
        grammar = self.grammars.compile(schema) if self.grammars is not None else None
        settings = self.settings
        parameters = {
            "temperature": settings.temperature,
            "max_new_tokens": settings.max_new_tokens,
            "constrained": settings.constrained,
            "on_rule_violation": settings.on_rule_violation,
        }
        started = time.monotonic()
        stats = GenerationStats()
        ids = self.prompt_ids(prompt)
        pending = [_Attempt(index, 0) for index in range(n)]
        results: dict[int, GeneratedCharacter] = {}
        while pending:
            batch, pending = pending[: settings.batch_size], pending[settings.batch_size :]
            samples = decoding.sample(
                self.model,
                ids,
                [row_seed(seed, item.index, item.attempt) for item in batch],
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                decode=self.tokenizer.decode,
                grammar=grammar,
                vocab_size=self.vocab_size,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                banned_token_ids=self.banned,
            )
            for item, result in zip(batch, samples, strict=True):
                stats.attempts += 1
                stats.tokens += len(result.token_ids) + int(result.finished)
                character, repaired_rules, problems = self._check(result, schema, locked, stats)
                if character is not None:
                    stats.characters += 1
                    stats.valid_first_try += int(item.attempt == 0 and not repaired_rules)
                    results[item.index] = GeneratedCharacter(
                        character=character,
                        seed=seed,
                        index=item.index,
                        attempts=item.attempt + 1,
                        repaired_rules=repaired_rules,
                        model=self.version,
                        parameters=parameters,
                        prompt=prompt,
                        constraints=locked or None,
                        tokens=len(result.token_ids),
                    )
                    if progress is not None:
                        progress(len(results), n)
                elif item.attempt + 1 < settings.max_attempts:
                    stats.regenerated += 1
                    pending.append(_Attempt(item.index, item.attempt + 1, problems))
                else:
                    stats.failed += 1
                    self._finish(stats, started)
                    raise GenerationFailed(
                        f"character {item.index} (seed {seed}) is still invalid after "
                        f"{settings.max_attempts} "
                        f"attempts with model {self.version}: {'; '.join(problems[:5])}"
                    )
        self._finish(stats, started)
        return [results[index] for index in range(n)], stats

    def _finish(self, stats: GenerationStats, started: float) -> None:
        stats.seconds = time.monotonic() - started
        self.stats.add(stats)

    def _check(
        self,
        result: decoding.Sample,
        schema: dict[str, Any],
        locked: dict[str, Any],
        stats: GenerationStats,
    ) -> tuple[dict[str, Any] | None, list[str], list[str]]:
        """(character or None, rules repaired, problems) for one sampled sheet."""
        if not result.finished:
            stats.truncated += 1
            return (
                None,
                [],
                [f"reached max_new_tokens ({self.settings.max_new_tokens}) before the sheet ended"],
            )
        try:
            document = json.loads(result.text)
        except json.JSONDecodeError as exc:
            stats.schema_invalid += 1
            return None, [], [f"not JSON: {exc.msg} at character {exc.pos}"]
        errors = schema_errors(document, schema)
        if errors:
            stats.schema_invalid += 1
            return None, [], [f"schema: {error}" for error in errors]
        violations = rule_violations(document)
        if not violations:
            return document, [], []
        stats.rule_invalid += 1
        problems = [str(violation) for violation in violations]
        if self.settings.on_rule_violation != "repair":
            return None, [], problems
        fixed = repair(document, locked=locked)
        if fixed is None or any(fixed.get(key) != document.get(key) for key in locked):
            return None, [], problems
        stats.repaired += 1
        return fixed, sorted({violation.rule for violation in violations}), []
