"""aria_shape's Prometheus metrics (the process-wide registry, which aria_monitor's /metrics exports).

Generation is counted where it happens (the API). Training runs in a child process: the parent
turns each step's JSON line into the gauges below (see ``ShapeApi._on_line``), so a run's progress
and reward curve are scraped from the node like any other metric. Units are base units (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

CHARACTERS = Counter(
    "aria_shape_characters_total",
    "Valid characters generated, by how they became valid (first_try, repaired, regenerated).",
    ["outcome"],
)
ATTEMPTS = Counter(
    "aria_shape_generation_attempts_total",
    "Sheets sampled, by what was wrong with them (ok, truncated, schema_invalid, rule_invalid).",
    ["result"],
)
FAILURES = Counter("aria_shape_generation_failures_total", "Characters given up after every attempt.")
TOKENS = Counter("aria_shape_generated_tokens_total", "Tokens sampled for character sheets.")
GENERATION_SECONDS = Histogram(
    "aria_shape_generation_seconds",
    "Time of one generation call (all its characters).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
BATCHES = Counter(
    "aria_shape_batches_total", "Queued batches finished, by outcome (completed, failed).", ["outcome"]
)

TRAINING_STEP = Gauge("aria_shape_training_step", "Steps a GRPO run has done.", ["run"])
TRAINING_STEPS = Gauge("aria_shape_training_steps_target", "Steps a GRPO run trains to.", ["run"])
TRAINING_REWARD = Gauge(
    "aria_shape_training_reward",
    'Mean reward of a GRPO run\'s latest step, per reward function (reward="total": the weighted sum).',
    ["run", "reward"],
)
TRAINING_KL = Gauge(
    "aria_shape_training_kl", "KL estimate to the reference model at the latest step.", ["run"]
)
TRAINING_LOSS = Gauge("aria_shape_training_loss", "GRPO loss at the latest step.", ["run"])
TRAINING_STEP_SECONDS = Histogram(
    "aria_shape_training_step_seconds",
    "Time of one GRPO step (sampling, rewards, update).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TRAINING_CHECKPOINTS = Counter("aria_shape_training_checkpoints_total", "Checkpoints saved.", ["run"])
TRAINING_STARTS = Counter(
    "aria_shape_training_starts_total",
    "Training processes started, fresh or resumed from a checkpoint (after a crash or restart).",
    ["run", "kind"],
)
TRAINING_RUNNING = Gauge("aria_shape_training_running", "1 while a GRPO run's process trains.", ["run"])


def count_generation(stats: Mapping[str, Any]) -> None:
    """Add one generation call's counts (``GenerationStats.to_dict()``)."""
    first_try = stats["valid_first_try"]
    CHARACTERS.labels("first_try").inc(first_try)
    CHARACTERS.labels("repaired").inc(stats["repaired"])
    CHARACTERS.labels("regenerated").inc(max(0, stats["characters"] - first_try - stats["repaired"]))
    ATTEMPTS.labels("ok").inc(
        max(0, stats["attempts"] - stats["truncated"] - stats["schema_invalid"] - stats["rule_invalid"])
    )
    ATTEMPTS.labels("truncated").inc(stats["truncated"])
    ATTEMPTS.labels("schema_invalid").inc(stats["schema_invalid"])
    ATTEMPTS.labels("rule_invalid").inc(stats["rule_invalid"])
    FAILURES.inc(stats["failed"])
    TOKENS.inc(stats["tokens"])
    GENERATION_SECONDS.observe(stats["seconds"])


def training_event(run: str, event: Mapping[str, Any]) -> None:
    """Reflect one JSON line of a training child (``started``, ``step``, ``checkpoint``, ``done``...)."""
    kind = event.get("event")
    if kind == "started":
        TRAINING_STEPS.labels(run).set(event.get("steps", 0))
        TRAINING_STEP.labels(run).set(event.get("resumed_from", 0))
        TRAINING_STARTS.labels(run, "resumed" if event.get("resumed_from") else "fresh").inc()
        TRAINING_RUNNING.labels(run).set(1)
    elif kind == "step":
        TRAINING_STEP.labels(run).set(event["step"])
        TRAINING_REWARD.labels(run, "total").set(event["reward"])
        for name, value in event.get("rewards", {}).items():
            TRAINING_REWARD.labels(run, name).set(value)
        TRAINING_KL.labels(run).set(event["kl"])
        TRAINING_LOSS.labels(run).set(event["loss"])
        TRAINING_STEP_SECONDS.observe(event["seconds"])
    elif kind == "checkpoint":
        TRAINING_CHECKPOINTS.labels(run).inc()
    elif kind in ("done", "interrupted"):
        TRAINING_RUNNING.labels(run).set(0)
