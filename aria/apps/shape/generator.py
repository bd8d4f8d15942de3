"""From a prompt to valid characters: constrained sampling, the rule validator, repair or regenerate.

A character's tokens follow from ``(request seed, index, attempt)`` and the chunk of the request it
is decoded in (see :class:`Generator`), so the same seed with the same model and parameters gives
the same characters.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

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
    id: str | None = None  # once stored in aria_data
    batch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"character": ..., "meta": {...}}``: what ``aria shape generate`` prints per line.

        A stored character also has ``"id"`` (and its batch in ``meta``).
        """
        stored = {"id": self.id} if self.id is not None else {}
        return {
            **stored,
            "character": self.character,
            "meta": {
                **({"batch": self.batch} if self.batch is not None else {}),
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


#: Sampling settings a request may carry (a stored batch keeps those it was submitted with).
PARAMETERS = (
    "temperature",
    "max_new_tokens",
    "constrained",
    "on_rule_violation",
    "max_attempts",
    "batch_size",
)

#: What :meth:`Generator.generate` reports through ``events`` (see there).
Event = dict[str, Any]


class Generator:
    """Generates characters with one loaded model (not thread-safe: one call at a time).

    Characters are made in chunks of ``batch_size`` consecutive indices (chunk ``c`` holds indices
    ``c * batch_size ..``), each chunk decoded as one batch with its regenerated attempts after it.
    A chunk's characters follow from (model, parameters, prompt, constraints, seed, chunk) alone,
    which is what makes a stored character reproducible and a resumed batch identical to an
    uninterrupted one.

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
        self._grammars = decoding.Grammars(tokenizer, self.vocab_size) if settings.constrained else None
        self.stats = GenerationStats()
        self.banned = decoding.marker_token_ids(tokenizer)

    @property
    def grammars(self) -> decoding.Grammars:
        if self._grammars is None:
            self._grammars = decoding.Grammars(self.tokenizer, self.vocab_size)
        return self._grammars

    def prompt_ids(self, prompt: str | None) -> list[int]:
        """The token ids the model starts from for ``prompt``."""
        return list(
            self.tokenizer.encode(corpus.END_TOKEN + corpus.prompt_text(prompt), add_special_tokens=False)
        )

    def parameters(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The sampling parameters of a request: this node's settings, with ``overrides`` on top.

        Raises:
            ValueError: naming an unknown parameter or a bad value.
        """
        current = {name: getattr(self.settings, name) for name in PARAMETERS}
        if not overrides:
            return current
        unknown = sorted(set(overrides) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown generation parameters {unknown}; known: {', '.join(PARAMETERS)}")
        try:
            checked = ShapeSection.model_validate({**current, **overrides})
        except PydanticValidationError as exc:
            raise ValueError(f"bad generation parameters {dict(overrides)}: {exc}") from None
        return {name: getattr(checked, name) for name in PARAMETERS}

    def generate(
        self,
        prompt: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        n: int = 1,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        *,
        indices: Iterable[int] | None = None,
        parameters: Mapping[str, Any] | None = None,
        events: Callable[[Event], None] | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[list[GeneratedCharacter], GenerationStats]:
        """Valid characters for ``prompt`` under ``constraints``, and the counts of this call.

        Args:
            prompt, constraints, n, seed: The request: ``n`` characters, indices ``0 .. n - 1``.
            progress: ``progress(done, total)`` after each character.
            indices: Only these indices (default: all). Their chunks are decoded in full, since a
                character depends on its chunk; only the asked ones are returned.
            parameters: Overrides of the sampling parameters (:data:`PARAMETERS`).
            events: Called with ``{"type": "token", "index", "attempt", "text"}`` for each token,
                ``{"type": "retry", "index", "attempt", "problems"}`` when an attempt is discarded,
                and ``{"type": "character", "index", **to_dict()}`` for each finished character.
            stop: Once set, the call raises :class:`~aria.apps.shape.decoding.Stopped` at its next
                decoding step.

        Returns:
            The characters in index order, and the counts.

        Raises:
            ValueError: for a bad ``n``, index or parameter, an over-long prompt or an impossible
                constraint.
            GenerationFailed: if a character is still invalid after ``max_attempts`` attempts.
            Stopped: if ``stop`` was set.
        """
        if not 1 <= n <= MAX_CHARACTERS_PER_CALL:
            raise ValueError(f"n must be 1..{MAX_CHARACTERS_PER_CALL}, not {n}")
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARACTERS:
            raise ValueError(
                f"prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARACTERS} are allowed"
            )
        wanted = sorted(set(range(n) if indices is None else indices))
        if not wanted or wanted[0] < 0 or wanted[-1] >= n:
            raise ValueError(f"indices must be among 0..{n - 1}, not {wanted}")
        schema = constrained_schema(constraints)  # validates the constraints
        options = self.parameters(parameters)
        locked = dict(constraints or {})
        grammar = self.grammars.compile(schema) if options["constrained"] else None
        started = time.monotonic()
        stats = GenerationStats()
        ids = self.prompt_ids(prompt)
        size = options["batch_size"]
        results: dict[int, GeneratedCharacter] = {}
        try:
            for chunk in sorted({index // size for index in wanted}):
                pending = [_Attempt(index, 0) for index in range(chunk * size, min(n, (chunk + 1) * size))]
                while pending:
                    batch = pending
                    pending = []
                    for item, result in zip(
                        batch, self._sample(batch, ids, seed, grammar, options, events, stop), strict=True
                    ):
                        stats.attempts += 1
                        stats.tokens += len(result.token_ids) + int(result.finished)
                        character, repaired_rules, problems = self._check(
                            result, schema, locked, stats, options
                        )
                        if character is not None:
                            stats.characters += 1
                            stats.valid_first_try += int(item.attempt == 0 and not repaired_rules)
                            made = GeneratedCharacter(
                                character=character,
                                seed=seed,
                                index=item.index,
                                attempts=item.attempt + 1,
                                repaired_rules=repaired_rules,
                                model=self.version,
                                parameters=options,
                                prompt=prompt,
                                constraints=locked or None,
                                tokens=len(result.token_ids),
                            )
                            if item.index in wanted:
                                results[item.index] = made
                                if events is not None:
                                    events({"type": "character", "index": item.index, **made.to_dict()})
                                if progress is not None:
                                    progress(len(results), len(wanted))
                        elif item.attempt + 1 < options["max_attempts"]:
                            stats.regenerated += 1
                            if events is not None and item.index in wanted:
                                events(
                                    {
                                        "type": "retry",
                                        "index": item.index,
                                        "attempt": item.attempt,
                                        "problems": problems[:5],
                                    }
                                )
                            pending.append(_Attempt(item.index, item.attempt + 1, problems))
                        else:
                            stats.failed += 1
                            raise GenerationFailed(
                                f"character {item.index} (seed {seed}) is still invalid after "
                                f"{options['max_attempts']} "
                                f"attempts with model {self.version}: {'; '.join(problems[:5])}"
                            )
        finally:
            stats.seconds = time.monotonic() - started
            self.stats.add(stats)
        return [results[index] for index in wanted], stats

    def _sample(
        self,
        batch: list[_Attempt],
        ids: list[int],
        seed: int,
        grammar: Any,
        options: dict[str, Any],
        events: Callable[[Event], None] | None,
        stop: threading.Event | None,
    ) -> list[decoding.Sample]:
        on_step = None
        if events is not None:
            decode = self.tokenizer.decode

            def on_step(drawn: list[tuple[int, int]]) -> None:
                for row, token in drawn:
                    item = batch[row]
                    text = decode([token])
                    events({"type": "token", "index": item.index, "attempt": item.attempt, "text": text})

        return decoding.sample(
            self.model,
            ids,
            [row_seed(seed, item.index, item.attempt) for item in batch],
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            decode=self.tokenizer.decode,
            grammar=grammar,
            vocab_size=self.vocab_size,
            max_new_tokens=options["max_new_tokens"],
            temperature=options["temperature"],
            banned_token_ids=self.banned,
            on_step=on_step,
            stop=stop,
        )

    def _check(
        self,
        result: decoding.Sample,
        schema: dict[str, Any],
        locked: dict[str, Any],
        stats: GenerationStats,
        options: dict[str, Any],
    ) -> tuple[dict[str, Any] | None, list[str], list[str]]:
        """(character or None, rules repaired, problems) for one sampled sheet."""
        if not result.finished:
            stats.truncated += 1
            return (
                None,
                [],
                [f"reached max_new_tokens ({options['max_new_tokens']}) before the sheet ended"],
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
        if options["on_rule_violation"] != "repair":
            return None, [], problems
        fixed = repair(document, locked=locked)
        if fixed is None or any(fixed.get(key) != document.get(key) for key in locked):
            return None, [], problems
        stats.repaired += 1
        return fixed, sorted({violation.rule for violation in violations}), []
