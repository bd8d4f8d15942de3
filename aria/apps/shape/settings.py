"""aria_shape's config section ``[shape]`` (documented in config/aria.toml and the README)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aria.config import Section


class ShapeSection(Section):
    model: str = Field(
        "",
        description="A local model directory or a hub id; empty means the project's own default model, "
        "trained on first use into <data_dir>/shape/models/default.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA (bf16) when present, else CPU."
    )
    torch_threads: int = Field(
        1, ge=1, description="CPU torch threads (more threads on busy cores is slower)."
    )
    constrained: bool = Field(True, description="Constrain decoding to the JSON Schema (needs xgrammar).")
    on_rule_violation: Literal["repair", "regenerate"] = Field(
        "repair",
        description="What to do with a sheet that breaks a rule: repair it when possible, or regenerate.",
    )
    max_attempts: int = Field(4, ge=1, description="Generations tried per character before giving up.")
    max_new_tokens: int = Field(
        768, ge=16, description="Token budget per sheet; reaching it is a failed attempt."
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    batch_size: int = Field(8, ge=1, description="Characters decoded together.")
    http_max_characters: int = Field(
        16,
        ge=1,
        le=1000,
        description="Most characters one HTTP or WebSocket request generates at once (more: a batch).",
    )
    base_seed: int = Field(0, description="Seed of the default model's corpus and training run.")
    base_characters: int = Field(
        2000, ge=10, description="Characters in the default model's training corpus."
    )
    base_steps: int = Field(600, ge=1, description="Optimiser steps of the default model's training run.")
    grpo_group_size: int = Field(8, ge=2, description="GRPO: completions sampled per prompt.")
    grpo_prompts_per_step: int = Field(2, ge=1, description="GRPO: prompts per step.")
    grpo_learning_rate: float = Field(1e-4, gt=0, description="GRPO: AdamW learning rate.")
    grpo_clip_epsilon: float = Field(0.2, gt=0, description="GRPO: the policy ratio is clipped to 1 +- this.")
    grpo_kl_beta: float = Field(
        0.04, ge=0, description="GRPO: weight of the KL penalty to the reference model."
    )
    grpo_updates_per_batch: int = Field(1, ge=1, description="GRPO: optimiser steps on each sampled batch.")
    grpo_constrained_sampling: bool = Field(
        False, description="GRPO: sample under the grammar (then the validity reward is always 1)."
    )
    grpo_max_new_tokens: int = Field(512, ge=8, description="GRPO: token budget per sampled completion.")
    grpo_checkpoint_every: int = Field(10, ge=1, description="GRPO: steps between checkpoints.")
    grpo_diversity_window: int = Field(
        64, ge=1, description="GRPO: recent characters the diversity reward compares with."
    )
