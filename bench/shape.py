"""aria_shape figures: constrained vs unconstrained tokens/s, characters/s end to end, GRPO step time.

Runs on the default model (trained into the data directory on first use, a few minutes) with one
torch thread on CPU, or on CUDA when present. Usage::

    .venv/bin/python bench/shape.py [--rows 8] [--tokens 256] [--characters 16] [--grpo-steps 3]

The constrained and unconstrained runs decode the same number of tokens per row (the sheet's end
token is masked out in both, so neither stops early), which makes their tokens/s comparable; the
overhead is 1 - constrained / unconstrained (target: under 25 %).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from aria.apps.shape import decoding
from aria.apps.shape.grpo import GRPOConfig, GRPOTrainer
from aria.apps.shape.rewards import make_rewards
from aria.apps.shape.schema import character_schema
from aria.apps.shape.service import ShapeService
from aria.config import load


def tokens_per_second(
    generator: object, grammar: object | None, rows: int, tokens: int, repeats: int
) -> float:
    tokenizer = generator.tokenizer  # type: ignore[attr-defined]
    prompt = generator.prompt_ids(None)  # type: ignore[attr-defined]
    banned = [*decoding.marker_token_ids(tokenizer), tokenizer.eos_token_id]
    rates = []
    for repeat in range(repeats):
        started = time.perf_counter()
        samples = decoding.sample(
            generator.model,  # type: ignore[attr-defined]
            prompt,
            [repeat * rows + row for row in range(rows)],
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            decode=tokenizer.decode,
            grammar=grammar,
            vocab_size=generator.vocab_size,  # type: ignore[attr-defined]
            max_new_tokens=tokens,
            banned_token_ids=banned,
        )
        elapsed = time.perf_counter() - started
        rates.append(sum(len(s.token_ids) for s in samples) / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="sequences decoded together")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per row in the tokens/s runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (median reported)")
    parser.add_argument("--characters", type=int, default=16, help="characters in the end-to-end run")
    parser.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps timed")
    args = parser.parse_args()

    config = load()
    service = ShapeService(config.shape, config.data_dir / "shape")
    started = time.perf_counter()
    generator = service.generator()
    print(
        f"model {generator.version} on {next(generator.model.parameters()).device}, "
        f"torch threads {torch.get_num_threads()}, loaded in {time.perf_counter() - started:.1f} s"
    )
    grammar = generator.grammars.compile(character_schema()) if generator.grammars is not None else None

    tokens_per_second(generator, None, args.rows, 16, 1)  # warm-up
    free = tokens_per_second(generator, None, args.rows, args.tokens, args.repeats)
    print(f"unconstrained: {free:8.0f} tokens/s  ({args.rows} rows x {args.tokens} tokens)")
    if grammar is None:
        print("constrained:   skipped (xgrammar is not installed or shape.constrained = false)")
    else:
        constrained = tokens_per_second(generator, grammar, args.rows, args.tokens, args.repeats)
        overhead = 1 - constrained / free
        print(f"constrained:   {constrained:8.0f} tokens/s  overhead {overhead:.1%} (target < 25%)")

    started = time.perf_counter()
    _characters, stats = generator.generate(n=args.characters, seed=1)
    elapsed = time.perf_counter() - started
    print(
        f"end to end:    {args.characters / elapsed:8.2f} characters/s  ({args.characters} characters, "
        f"{stats.tokens / elapsed:.0f} tokens/s, attempts {stats.attempts}, repaired {stats.repaired}, "
        f"regenerated {stats.regenerated}, first-try valid {stats.valid_first_try})"
    )

    reference = copy.deepcopy(generator.model)
    policy = copy.deepcopy(generator.model)
    settings = config.shape
    grpo = GRPOConfig(
        steps=args.grpo_steps,
        group_size=settings.grpo_group_size,
        prompts_per_step=settings.grpo_prompts_per_step,
        max_new_tokens=settings.grpo_max_new_tokens,
        learning_rate=settings.grpo_learning_rate,
    )
    trainer = GRPOTrainer(
        policy, reference, generator.tokenizer, make_rewards("validity,rules,diversity"), grpo
    )
    reports = trainer.train()
    times = [r.seconds for r in reports]
    print(
        f"GRPO step:     {statistics.median(times):8.2f} s median over {len(times)} steps "
        f"({settings.grpo_group_size} x {settings.grpo_prompts_per_step} completions, "
        f"{statistics.mean(r.tokens for r in reports):.0f} tokens/step, mean reward {reports[-1].reward:.3f})"
    )


if __name__ == "__main__":
    main()
