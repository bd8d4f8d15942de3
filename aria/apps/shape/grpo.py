"""GRPO (Group Relative Policy Optimisation), implemented here for small causal LMs.

Each step samples ``group_size`` completions for each of ``prompts_per_step`` prompts, scores them
with the rewards, normalises the rewards within each group into advantages, and minimises

    -mean_seq( mean_tok( min(r * A, clip(r, 1 - eps, 1 + eps) * A) - beta * KL ) )

where ``r`` is the per-token ratio of the policy to the policy that sampled, and ``KL`` the k3
estimator ``exp(ref - logp) - (ref - logp) - 1`` against a frozen reference model (the starting
model). Under ``constrained_sampling`` the grammar's per-step masks are kept and re-applied when
log-probs are recomputed, so ratios and KL are those of the distribution actually sampled.

Everything a step draws follows from ``(seed, step)``, so a run resumed from a checkpoint (model,
optimiser and reward state) continues exactly as if it had never stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from aria.apps.shape import corpus, decoding
from aria.apps.shape.errors import TrainingFailed
from aria.apps.shape.rewards import Completion, Reward


@dataclass(frozen=True)
class GRPOConfig:
    """The knobs of a run (see the module docstring); ``seed`` fixes prompts and samples."""

    steps: int
    group_size: int = 8
    prompts_per_step: int = 2
    learning_rate: float = 1e-4
    clip_epsilon: float = 0.2
    kl_beta: float = 0.04
    updates_per_batch: int = 1
    constrained_sampling: bool = False
    max_new_tokens: int = 512
    temperature: float = 1.0
    checkpoint_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.group_size < 2 or self.prompts_per_step < 1:
            raise ValueError(f"GRPO needs steps >= 1, group_size >= 2, prompts_per_step >= 1: {self}")


@dataclass
class StepReport:
    """What one step did: rewards (mean and per reward), loss, KL, clipping, time."""

    step: int
    reward: float
    rewards: dict[str, float]
    loss: float
    kl: float
    clipped: float
    tokens: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("reward", "loss", "kl", "clipped", "seconds"):
            data[key] = round(data[key], 5)
        data["rewards"] = {k: round(v, 5) for k, v in self.rewards.items()}
        return data


#: The metadata ``format`` of a checkpoint packed into one file, and its state's tensor name.
PACKED_FORMAT = "aria-grpo-checkpoint-1"
PACKED_STATE = "state.json"


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


class CheckpointStore:
    """Checkpoints of one run in a local directory: ``step-<n>/`` with safetensors and a JSON state.

    The trainer (in its own process) saves and resumes here. On a node, aria_shape mirrors each
    checkpoint into aria_storage's asset catalogue as one packed file (:meth:`pack`) and, before a
    run (re)starts, restores the catalogue's newest one if this directory lacks it (:meth:`unpack`;
    see :class:`aria.apps.shape.checkpoints.CatalogCheckpoints`). Each checkpoint is written to a
    temporary directory and renamed, so a crash mid-write leaves the previous checkpoint intact;
    only the newest ``keep`` are kept.
    """

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.directory = directory
        self.keep = keep

    def steps(self) -> list[int]:
        """The steps that have a complete checkpoint, oldest first."""
        if not self.directory.exists():
            return []
        found = []
        for path in self.directory.glob("step-*"):
            if (path / "state.json").exists() and path.name[5:].isdigit():
                found.append(int(path.name[5:]))
        return sorted(found)

    def path(self, step: int) -> Path:
        return self.directory / f"step-{step:06d}"

    def save(self, step: int, model: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
        """Write a checkpoint for ``step``; return its directory."""
        final = self.path(step)
        staging = self.directory / f".step-{step:06d}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        save_model(model, str(staging / "model.safetensors"))
        tensors, meta = _optimizer_tensors(optimizer)
        save_file(tensors, str(staging / "optimizer.safetensors"))
        (staging / "state.json").write_text(json.dumps({"step": step, "optimizer": meta, **state}) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def load(self, step: int, model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Restore model and optimiser from ``step``; return the saved state.

        Raises:
            TrainingFailed: if the checkpoint is missing or does not fit the model.
        """
        path = self.path(step)
        try:
            state = json.loads((path / "state.json").read_text())
            missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
            if unexpected or [m for m in missing if not m.endswith("lm_head.weight")]:
                raise TrainingFailed(
                    f"checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}"
                )
            _load_optimizer(optimizer, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            raise TrainingFailed(f"cannot load checkpoint {path}: {exc}") from exc
        return state

    def pack(self, step: int, target: Path) -> Path:
        """Write checkpoint ``step`` as one safetensors file at ``target`` (what goes into the asset
        catalog): the model's tensors under ``model/``, the optimiser's under ``optimizer/`` and
        ``state.json`` as bytes. Written to a temporary name and renamed.

        Raises:
            TrainingFailed: if the checkpoint is missing or unreadable.
        """
        path = self.path(step)
        try:
            tensors = {f"model/{k}": v for k, v in load_file(str(path / "model.safetensors")).items()}
            tensors.update(
                {f"optimizer/{k}": v for k, v in load_file(str(path / "optimizer.safetensors")).items()}
            )
            state = (path / "state.json").read_bytes()
            tensors[PACKED_STATE] = torch.frombuffer(bytearray(state), dtype=torch.uint8)
            staging = target.with_name(f".{target.name}.partial")
            save_file(tensors, str(staging), metadata={"format": PACKED_FORMAT, "step": str(step)})
            staging.rename(target)
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise TrainingFailed(f"cannot pack checkpoint {path}: {exc}") from exc
        return target

    def unpack(self, source: Path) -> int:
        """Add the checkpoint packed in ``source`` (see :meth:`pack`) to this store; return its step.

        Raises:
            TrainingFailed: if ``source`` is not a packed checkpoint.
        """
        step, parts, state = _read_packed(source)
        try:
            staging = self.directory / f".step-{step:06d}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            save_file(parts["model"], str(staging / "model.safetensors"))
            save_file(parts["optimizer"], str(staging / "optimizer.safetensors"))
            (staging / "state.json").write_bytes(state)
            shutil.rmtree(self.path(step), ignore_errors=True)
            staging.rename(self.path(step))
        except OSError as exc:
            raise TrainingFailed(f"cannot unpack checkpoint {source} into {self.directory}: {exc}") from exc
        return step


def _read_packed(source: Path) -> tuple[int, dict[str, dict[str, torch.Tensor]], bytes]:
    """(step, {"model": tensors, "optimizer": tensors}, state.json bytes) of a packed checkpoint."""
    try:
        with safe_open(str(source), framework="pt") as packed:
            metadata = packed.metadata() or {}
        tensors = load_file(str(source))
        state = bytes(tensors.pop(PACKED_STATE).numpy())
        step = int(metadata.get("step", -1))
        recorded = json.loads(state).get("step")
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise TrainingFailed(f"cannot read packed checkpoint {source}: {exc}") from exc
    if metadata.get("format") != PACKED_FORMAT or recorded != step:
        raise TrainingFailed(
            f"{source} is not a packed GRPO checkpoint (format {metadata.get('format')!r}, "
            f"step {metadata.get('step')!r}, its state's step {recorded!r})"
        )
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optimizer": {}}
    for name, tensor in tensors.items():
        part, _, key = name.partition("/")
        if part not in parts:
            raise TrainingFailed(f"{source}: unexpected tensor {name!r} in a packed checkpoint")
        parts[part][key] = tensor
    return step, parts, state


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def default_prompts(seed: int, count: int = 256) -> list[str | None]:
    """Prompts like the users' (from the procedural corpus), including the empty prompt."""
    rng = random.Random(seed)
    prompts: list[str | None] = [None]
    while len(prompts) < count:
        prompts.append(corpus.describe(corpus.random_character(rng), rng))
    return prompts


class GRPOTrainer:
    """Trains ``model`` in place with GRPO.

    Args:
        model: The policy (a causal LM); trained in place.
        reference: The frozen reference model for the KL term (same architecture and vocabulary).
        tokenizer: The shared tokenizer.
        rewards: ``(reward, weight)`` pairs; the total reward is the weighted sum.
        config: The run's knobs.
        checkpoints: Where checkpoints go; None disables them.
        prompts: The prompts to draw from (default: :func:`default_prompts`).
        grammar: A compiled grammar for ``constrained_sampling``.
        on_step: Called with each :class:`StepReport`.
        on_checkpoint: Called with the step and directory of each checkpoint.
    """

    def __init__(
        self,
        model: Any,
        reference: Any,
        tokenizer: Any,
        rewards: Sequence[tuple[Reward, float]],
        config: GRPOConfig,
        *,
        checkpoints: CheckpointStore | None = None,
        prompts: Sequence[str | None] | None = None,
        grammar: Any | None = None,
        on_step: Callable[[StepReport], None] | None = None,
        on_checkpoint: Callable[[int, Path], None] | None = None,
    ) -> None:
        if config.constrained_sampling and grammar is None:
            raise ValueError("constrained_sampling needs a compiled grammar")
        self.model = model
        self.reference = reference.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.rewards = list(rewards)
        self.config = config
        self.checkpoints = checkpoints
        self.prompts = list(prompts) if prompts is not None else default_prompts(config.seed)
        self.grammar = grammar if config.constrained_sampling else None
        self.on_step = on_step
        self.on_checkpoint = on_checkpoint
        self.vocab_size = int(model.config.vocab_size)
        self.banned = decoding.marker_token_ids(tokenizer)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
        self.step = 0
        self.history: list[StepReport] = []

    def resume(self) -> int:
        """Continue from the newest checkpoint, if any; return the step reached (0: a fresh run)."""
        if self.checkpoints is None or not (steps := self.checkpoints.steps()):
            return 0
        state = self.checkpoints.load(steps[-1], self.model, self.optimizer)
        for reward, _ in self.rewards:
            saved = state.get("rewards", {}).get(reward.name)
            if saved is not None and hasattr(reward, "load_state_dict"):
                reward.load_state_dict(saved)
        self.history = [StepReport(**item) for item in state.get("history", [])]
        self.step = int(state["step"])
        return self.step

    def train(self) -> list[StepReport]:
        """Run the remaining steps (checkpointing as configured); return every step's report."""
        while self.step < self.config.steps:
            report = self.train_step()
            if self.checkpoints is not None and (
                self.step % self.config.checkpoint_every == 0 or self.step == self.config.steps
            ):
                self.save_checkpoint()
            del report
        return self.history

    def save_checkpoint(self) -> Path:
        if self.checkpoints is None:
            raise ValueError("this trainer has no checkpoint store")
        reward_state = {
            reward.name: reward.state_dict() for reward, _ in self.rewards if hasattr(reward, "state_dict")
        }
        state = {
            "rewards": reward_state,
            "history": [asdict(r) for r in self.history],
            "config": asdict(self.config),
        }
        path = self.checkpoints.save(self.step, self.model, self.optimizer, state)
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step, path)
        return path

    def _prompt_ids(self, prompt: str | None) -> list[int]:
        return list(
            self.tokenizer.encode(corpus.END_TOKEN + corpus.prompt_text(prompt), add_special_tokens=False)
        )

    def train_step(self) -> StepReport:
        """Sample, score, and update once (``updates_per_batch`` optimiser steps)."""
        started = time.monotonic()
        config = self.config
        step = self.step
        chooser = random.Random(_seed(config.seed, "prompts", step))
        self.model.eval()
        sequences: list[list[int]] = []
        prompt_lengths: list[int] = []
        masks: list[list[torch.Tensor]] = []
        advantages: list[float] = []
        totals: list[float] = []
        per_reward: dict[str, list[float]] = {reward.name: [] for reward, _ in self.rewards}
        for group in range(config.prompts_per_step):
            prompt = chooser.choice(self.prompts)
            ids = self._prompt_ids(prompt)
            samples = decoding.sample(
                self.model,
                ids,
                [_seed(config.seed, "sample", step, group, k) for k in range(config.group_size)],
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                decode=self.tokenizer.decode,
                grammar=self.grammar,
                vocab_size=self.vocab_size,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                keep_masks=self.grammar is not None,
                banned_token_ids=self.banned,
            )
            completions = [Completion(prompt, s.text, s.token_ids, s.finished) for s in samples]
            scores = torch.zeros(len(samples), dtype=torch.float64)
            for reward, weight in self.rewards:
                values = torch.tensor(reward(completions), dtype=torch.float64)
                per_reward[reward.name].extend(values.tolist())
                scores += weight * values
            totals.extend(scores.tolist())
            normalised = (scores - scores.mean()) / (scores.std(unbiased=False) + 1e-4)
            advantages.extend(normalised.tolist())
            for s in samples:
                sequences.append([*ids, *s.token_ids, *([self.tokenizer.eos_token_id] if s.finished else [])])
                prompt_lengths.append(len(ids))
                masks.append(s.masks)
        loss_value, kl_value, clipped = self._update(sequences, prompt_lengths, masks, advantages)
        self.step += 1
        report = StepReport(
            step=self.step,
            reward=sum(totals) / len(totals),
            rewards={name: sum(v) / len(v) for name, v in per_reward.items()},
            loss=loss_value,
            kl=kl_value,
            clipped=clipped,
            tokens=sum(len(s) - p for s, p in zip(sequences, prompt_lengths, strict=True)),
            seconds=time.monotonic() - started,
        )
        self.history.append(report)
        if self.on_step is not None:
            self.on_step(report)
        return report

    def _token_logprobs(
        self, model: Any, batch: torch.Tensor, attention: torch.Tensor, bitmask: torch.Tensor | None
    ) -> torch.Tensor:
        """log p(token_t | tokens_<t) for t >= 1, shape (B, T - 1); masked by the grammar if given."""
        logits = model(input_ids=batch, attention_mask=attention).logits[:, :-1, :].float()
        if bitmask is not None:
            flat = logits.reshape(-1, logits.shape[-1])
            masked = flat.masked_fill(
                ~_expand_bitmask(bitmask.reshape(-1, bitmask.shape[-1]), flat.shape[-1]), -math.inf
            )
            logits = masked.reshape(logits.shape)
        logprobs = torch.log_softmax(logits, dim=-1)
        return logprobs.gather(-1, batch[:, 1:].unsqueeze(-1)).squeeze(-1)

    def _update(
        self,
        sequences: list[list[int]],
        prompt_lengths: list[int],
        masks: list[list[torch.Tensor]],
        advantages: list[float],
    ) -> tuple[float, float, float]:
        config = self.config
        device = next(self.model.parameters()).device
        length = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        batch = torch.tensor(
            [s + [pad] * (length - len(s)) for s in sequences], dtype=torch.long, device=device
        )
        attention = torch.tensor([[1] * len(s) + [0] * (length - len(s)) for s in sequences], device=device)
        completion = torch.zeros(len(sequences), length - 1, device=device)
        for row, (sequence, start) in enumerate(zip(sequences, prompt_lengths, strict=True)):
            completion[row, start - 1 : len(sequence) - 1] = 1.0
        bitmask = None
        if self.grammar is not None:
            words = (self.vocab_size + 31) // 32
            bitmask = torch.full((len(sequences), length - 1, words), -1, dtype=torch.int32)
            for row, (row_masks, start) in enumerate(zip(masks, prompt_lengths, strict=True)):
                for offset, mask in enumerate(row_masks):
                    bitmask[row, start - 1 + offset] = mask
        advantage = torch.tensor(advantages, dtype=torch.float32, device=device).unsqueeze(1)
        with torch.no_grad():
            reference = self._token_logprobs(self.reference, batch, attention, bitmask)
            old = (
                self._token_logprobs(self.model, batch, attention, bitmask)
                if config.updates_per_batch > 1
                else None
            )
        counts = completion.sum(dim=1).clamp(min=1.0)
        loss_value = kl_value = clipped_value = 0.0
        self.model.train()
        for _ in range(config.updates_per_batch):
            logprobs = self._token_logprobs(self.model, batch, attention, bitmask)
            ratio = torch.exp(logprobs - (old if old is not None else logprobs.detach()))
            clipped_ratio = ratio.clamp(1 - config.clip_epsilon, 1 + config.clip_epsilon)
            surrogate = torch.minimum(ratio * advantage, clipped_ratio * advantage)
            delta = reference - logprobs
            kl = torch.exp(delta) - delta - 1
            per_token = -(surrogate - config.kl_beta * kl)
            loss = ((per_token * completion).sum(dim=1) / counts).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingFailed(f"GRPO loss became {loss_value} at step {self.step + 1}")
            kl_value = float(((kl.detach() * completion).sum(dim=1) / counts).mean())
            outside = ((ratio - clipped_ratio).abs() > 0).float()
            clipped_value = float((outside * completion).sum() / completion.sum().clamp(min=1.0))
        self.model.eval()
        return loss_value, kl_value, clipped_value


def _expand_bitmask(bitmask: torch.Tensor, vocab: int) -> torch.Tensor:
    """int32 words (bit i of word w = token 32 * w + i allowed) to a boolean (rows, vocab) mask."""
    bits = torch.arange(32, dtype=torch.int32)
    allowed = ((bitmask.unsqueeze(-1) >> bits) & 1).bool()
    return allowed.reshape(bitmask.shape[0], -1)[:, :vocab]
