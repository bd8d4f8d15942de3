"""aria_shape figures: constrained vs unconstrained tokens/s, characters/s end to end, GRPO step time.

Runs on the default model (trained into the data directory on first use, a few minutes) with one
torch thread on CPU, or on CUDA when present. Usage::

    .venv/bin/python -m bench.shape [--rows 8] [--tokens 256] [--characters 16] [--grpo-steps 3]
    .venv/bin/python -m bench.shape --qwen3-0.6b      # a randomly initialised Qwen3-0.6B-sized model

The constrained and unconstrained runs decode the same number of tokens per row (the sheet's end
token is masked out in both, so neither stops early), which makes their tokens/s comparable; the
overhead is 1 - constrained / unconstrained (target: under 25 %).

With PostgreSQL installed it also boots a node (aria_shape and its dependencies, in a temporary data
directory) and times one request three ways: generated in-process without storing (the peer),
generated and stored in aria_data, and queued as a batch on ``ai_generation`` until stored
(``--no-node`` skips this).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import trio

import aria
from aria.apps.shape import decoding
from aria.apps.shape.generator import Generator
from aria.apps.shape.grpo import GRPOConfig, GRPOTrainer
from aria.apps.shape.model import random_model, tiny_config
from aria.apps.shape.rewards import make_rewards
from aria.apps.shape.schema import character_schema
from aria.apps.shape.service import ShapeService
from aria.apps.shape.settings import ShapeSection
from aria.config import load


def tokens_per_second(
    generator: object, grammar: object | None, rows: int, tokens: int, repeats: int
) -> float:
    tokenizer = generator.tokenizer  # type: ignore[attr-defined]
    prompt = generator.prompt_ids(None)  # type: ignore[attr-defined]
    # The end token never (so rows run to the same length), nor ids past the tokenizer's vocabulary.
    banned = [
        *decoding.marker_token_ids(tokenizer),
        tokenizer.eos_token_id,
        *range(len(tokenizer), generator.vocab_size),  # type: ignore[attr-defined]
    ]
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


def qwen3_06b(default: Generator, settings: ShapeSection) -> Generator:
    """A generator around a random model shaped like Qwen3-0.6B, on the default model's device."""
    device = next(default.model.parameters()).device
    dtype = next(default.model.parameters()).dtype
    config = tiny_config(
        151936,
        default.tokenizer,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=4096,
    )
    model = random_model(config, seed=0).to(device=device, dtype=dtype)
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"Qwen3-0.6B-shaped random model: {parameters:.0f} M parameters, {dtype}")
    return Generator(model, default.tokenizer, "qwen3-0.6b-shape@random", settings)


async def node_figures(model: str, characters: int, rounds: int) -> None:
    """One request of ``characters``: in-process unstored, in-process stored, queued and stored;
    the three alternate for ``rounds`` rounds (the best of each is reported, with the median)."""
    from aria.apps.data.engines import find_postgres_binaries

    if find_postgres_binaries() is None:
        print("node:          skipped (PostgreSQL's initdb and postgres are not installed)")
        return
    base = Path(tempfile.mkdtemp(prefix="aria-bench-", dir="/tmp"))
    await trio.Path(base).chmod(0o711)  # PostgreSQL runs as its own user when Aria runs as root
    config = {
        "node": {"data_dir": str(base / "var")},
        "log": {"level": "warning", "format": "json"},
        "data": {"engine": "postgres"},
        "queue": {"poll_interval": 0.1},
        "shape": {"model": model},
    }
    try:
        async with aria.running(apps=["aria_shape"], config=config):
            shape = await aria.whereis("aria_shape").get()
            await shape.load()
            request = {"prompt": "a bold dwarf", "n": characters, "seed": 3}
            await shape.generate(**{**request, "n": 1}, store=False)  # warm-up: the prompt's grammar
            timings: dict[str, list[float]] = {}
            for _ in range(rounds):
                for name, work in (
                    ("in-process, not stored", lambda: shape.generate(**request, store=False)),
                    ("in-process, stored", lambda: shape.generate(**request)),
                    ("queued batch, stored", lambda: queued(shape, request)),
                ):
                    started = time.perf_counter()
                    await work()
                    timings.setdefault(name, []).append(time.perf_counter() - started)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    peer = min(timings["in-process, not stored"])
    for name, seconds in timings.items():
        print(
            f"node:          {characters / min(seconds):8.2f} characters/s best, "
            f"{characters / statistics.median(seconds):.2f} median  {name} "
            f"({min(seconds) / peer - 1:+.1%} time against in-process, not stored; {rounds} rounds)"
        )


async def queued(shape: object, request: dict[str, object]) -> None:
    batch = await shape.submit(**request)  # type: ignore[attr-defined]
    done = await shape.wait_for_batch(batch["id"], poll_interval=0.05)  # type: ignore[attr-defined]
    assert done["state"] == "completed", done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="sequences decoded together")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per row in the tokens/s runs")
    parser.add_argument("--repeats", type=int, default=5, help="runs per variant (median reported)")
    parser.add_argument("--characters", type=int, default=16, help="characters in the end-to-end run")
    parser.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps timed (0: skip)")
    parser.add_argument("--no-node", action="store_true", help="skip the node figures (stored, queued)")
    parser.add_argument("--node-rounds", type=int, default=3, help="rounds of the node figures")
    parser.add_argument(
        "--qwen3-0.6b",
        dest="qwen3_06b",
        action="store_true",
        help="use a randomly initialised model of Qwen3-0.6B's shape (28 layers, hidden 1024, vocabulary "
        "151936) with the default tokenizer instead of the default model (meant for a GPU)",
    )
    args = parser.parse_args()

    config = load()
    service = ShapeService(config.shape, config.data_dir / "shape")
    started = time.perf_counter()
    generator = service.generator()
    if args.qwen3_06b:
        generator = qwen3_06b(generator, config.shape)
    print(
        f"model {generator.version} on {next(generator.model.parameters()).device}, "
        f"torch threads {torch.get_num_threads()}, loaded in {time.perf_counter() - started:.1f} s"
    )
    constrained = config.shape.constrained and decoding.grammar_available()
    grammar = generator.grammars.compile(character_schema()) if constrained else None

    tokens_per_second(generator, None, args.rows, 16, 1)  # warm-up
    # Alternate the two variants so that load from other processes hits both alike.
    free_rates, constrained_rates = [], []
    for _ in range(args.repeats):
        free_rates.append(tokens_per_second(generator, None, args.rows, args.tokens, 1))
        if grammar is not None:
            constrained_rates.append(tokens_per_second(generator, grammar, args.rows, args.tokens, 1))
    # The best run of each is the least disturbed by other processes on a shared machine.
    free, free_median = max(free_rates), statistics.median(free_rates)
    print(
        f"unconstrained: {free:8.0f} tokens/s best, {free_median:.0f} median "
        f"({args.rows} rows x {args.tokens} tokens, {args.repeats} runs)"
    )
    if grammar is None:
        print("constrained:   skipped (xgrammar is not installed or shape.constrained = false)")
    else:
        constrained, constrained_median = max(constrained_rates), statistics.median(constrained_rates)
        print(
            f"constrained:   {constrained:8.0f} tokens/s best, {constrained_median:.0f} median; overhead "
            f"{1 - constrained / free:.1%} best, {1 - constrained_median / free_median:.1%} median "
            "(target < 25%)"
        )

    if args.characters < 1:
        return
    started = time.perf_counter()
    _characters, stats = generator.generate(n=args.characters, seed=1)
    elapsed = time.perf_counter() - started
    print(
        f"end to end:    {args.characters / elapsed:8.2f} characters/s  ({args.characters} characters, "
        f"{stats.tokens / elapsed:.0f} tokens/s, attempts {stats.attempts}, repaired {stats.repaired}, "
        f"regenerated {stats.regenerated}, first-try valid {stats.valid_first_try})"
    )

    if not args.no_node and not args.qwen3_06b:
        trio.run(node_figures, service.model_name(), args.characters, args.node_rounds)

    if args.grpo_steps < 1:
        return
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
