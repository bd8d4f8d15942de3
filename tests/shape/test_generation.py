"""Generation: always schema-valid under the grammar, rules repaired or regenerated, reproducible."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import trio

import aria
from aria.apps.shape import corpus, decoding
from aria.apps.shape.api import ShapeApi
from aria.apps.shape.app import APP
from aria.apps.shape.errors import GenerationFailed, ModelUnavailable
from aria.apps.shape.rules import SPECIES_AGE, validate
from aria.apps.shape.schema import character_schema, parse_character
from aria.apps.shape.service import ShapeService
from aria.apps.shape.settings import ShapeSection
from tests.shape.conftest import needs_xgrammar, tiny_random_model


def service_for(model_dir: Path, data_dir: Path, **settings: Any) -> ShapeService:
    return ShapeService(ShapeSection(model=str(model_dir), **settings), data_dir / "shape")


@needs_xgrammar
class TestGrammar:
    def test_a_random_model_gives_100_percent_schema_valid_sheets_under_the_grammar(
        self, tiny_tokenizer: Any
    ) -> None:
        model = tiny_random_model(tiny_tokenizer, seed=1)
        grammar = decoding.Grammars(tiny_tokenizer, model.config.vocab_size).compile(character_schema())
        prompt = tiny_tokenizer.encode(corpus.END_TOKEN + corpus.prompt_text(None))
        samples = []
        for first in range(0, 50, 10):
            samples += decoding.sample(
                model,
                prompt,
                list(range(first, first + 10)),
                eos_token_id=tiny_tokenizer.eos_token_id,
                pad_token_id=tiny_tokenizer.pad_token_id,
                decode=tiny_tokenizer.decode,
                grammar=grammar,
                vocab_size=model.config.vocab_size,
                max_new_tokens=1500,
                banned_token_ids=decoding.marker_token_ids(tiny_tokenizer),
            )
        assert len(samples) == 50
        assert all(s.finished for s in samples)
        assert [errors for s in samples if (errors := parse_character(s.text)[1])] == []
        # The same model without the grammar writes no valid sheet at all.
        free = decoding.sample(
            model,
            prompt,
            list(range(10)),
            eos_token_id=tiny_tokenizer.eos_token_id,
            pad_token_id=tiny_tokenizer.pad_token_id,
            decode=tiny_tokenizer.decode,
            max_new_tokens=200,
        )
        assert not any(parse_character(s.text)[1] == [] for s in free)


@needs_xgrammar
class TestGenerator:
    def test_characters_are_valid_and_the_same_seed_gives_the_same_characters(
        self, tiny_model_dir: Path, data_dir: Path
    ) -> None:
        generator = service_for(tiny_model_dir, data_dir).generator()
        first, stats = generator.generate(n=4, seed=5)
        again, _ = generator.generate(n=4, seed=5)
        other, _ = generator.generate(n=4, seed=6)
        assert [c.to_dict() for c in first] == [c.to_dict() for c in again]
        assert [c.character for c in first] != [c.character for c in other]
        assert all(validate(c.character) == [] for c in first + other)
        # A random model breaks rules: each character was repaired or regenerated, and counted.
        assert stats.characters == 4
        assert stats.attempts == 4 + stats.regenerated
        assert stats.repaired == sum(1 for c in first if c.repaired_rules)
        assert stats.repaired + stats.valid_first_try >= 1
        meta = first[0].to_dict()["meta"]
        assert meta["seed"] == 5 and meta["model"].startswith("tiny@") and meta["parameters"]["constrained"]

    def test_constraints_hold_and_rules_are_repaired_around_them(
        self, tiny_model_dir: Path, data_dir: Path
    ) -> None:
        generator = service_for(tiny_model_dir, data_dir).generator()
        characters, _ = generator.generate(
            constraints={"species": "elf", "archetype": ["mage", "bard"]}, n=4, seed=1
        )
        low, high = SPECIES_AGE["elf"]
        for generated in characters:
            character = generated.character
            assert character["species"] == "elf" and character["archetype"] in ("mage", "bard")
            assert low <= character["age"] <= high
        with pytest.raises(ValueError, match="constraint on 'stats' is not supported"):
            generator.generate(constraints={"stats": 1})

    def test_regenerate_policy_gives_up_naming_the_broken_rules(
        self, tiny_model_dir: Path, data_dir: Path
    ) -> None:
        generator = service_for(
            tiny_model_dir, data_dir, on_rule_violation="regenerate", max_attempts=2
        ).generator()
        # A 20-year-old elf breaks age.species_range whatever the model writes.
        with pytest.raises(
            GenerationFailed,
            match=r"character 0 \(seed 3\) is still invalid after 2 attempts "
            r"with model tiny@\w+: .*age.species_range at age: elf age must be 100..750, not 20",
        ):
            generator.generate(constraints={"species": "elf", "age": 20}, n=1, seed=3)
        assert generator.stats.regenerated == 1 and generator.stats.failed == 1
        # Under the repair policy, the same clash with a constrained field cannot be repaired either.
        repairing = service_for(tiny_model_dir, data_dir, max_attempts=1).generator()
        with pytest.raises(GenerationFailed, match=r"age\.species_range"):
            repairing.generate(constraints={"species": "elf", "age": 20}, n=1, seed=3)

    def test_a_truncated_sheet_is_an_attempt_that_failed(self, tiny_model_dir: Path, data_dir: Path) -> None:
        generator = service_for(tiny_model_dir, data_dir, max_new_tokens=20, max_attempts=1).generator()
        with pytest.raises(GenerationFailed, match=r"reached max_new_tokens \(20\)"):
            generator.generate(n=1, seed=0)
        assert generator.stats.truncated == 1


class TestModels:
    def test_a_missing_model_is_named(self, data_dir: Path) -> None:
        with pytest.raises(ModelUnavailable, match="cannot load model '/nonexistent/model'"):
            ShapeService(ShapeSection(model="/nonexistent/model"), data_dir).generator()

    def test_train_base_is_reproducible_and_loads_with_from_pretrained(self, data_dir: Path) -> None:
        from aria.apps.shape.model import BaseRecipe, load_model, train_base

        recipe = BaseRecipe(
            characters=40,
            vocab_size=512,
            hidden_size=32,
            layers=1,
            heads=2,
            kv_heads=1,
            intermediate_size=64,
            block_size=64,
            batch_size=4,
            steps=30,
            warmup_steps=2,
        )
        losses: list[float] = []
        first = train_base(data_dir / "a", recipe, progress=lambda step, steps, loss: losses.append(loss))
        second = train_base(data_dir / "b", recipe)
        assert first["final_loss"] == second["final_loss"] and losses[-1] < losses[0]
        weights = [(data_dir / d / "model.safetensors").read_bytes() for d in ("a", "b")]
        assert weights[0] == weights[1]
        import torch

        model, tokenizer, version = load_model(data_dir / "a", torch.device("cpu"), torch.float32)
        assert type(model).__name__ == "Qwen3ForCausalLM" and version.startswith("a@")
        assert tokenizer.eos_token == corpus.END_TOKEN
        assert json.loads((data_dir / "a" / "aria_recipe.json").read_text())["recipe"]["steps"] == 30


@needs_xgrammar
class TestApi:
    async def test_generate_through_the_running_app(
        self, tiny_model_dir: Path, node_config: dict[str, Any]
    ) -> None:
        standalone = dataclasses.replace(APP, depends_on=())
        config = {**node_config, "shape": {"model": str(tiny_model_dir)}}
        async with aria.running(apps=["shape"], config=config, catalog=[standalone]) as system:
            shape = system.whereis("aria_shape")
            assert shape.status()["model"] == str(tiny_model_dir)
            characters = await shape.generate(prompt="a kind elf", n=2, seed=11)
            again = await shape.generate(prompt="a kind elf", n=2, seed=11)
            assert [c.to_dict() for c in characters] == [c.to_dict() for c in again]
            assert characters[0].prompt == "a kind elf"
            status = shape.status()
            assert status["generation"]["characters"] == 4 and status["model"].startswith("tiny@")
            with pytest.raises(ValueError, match=r"n must be 1\.\.1000, not 0"):
                await shape.generate(n=0)

    async def test_cancelling_a_call_stops_sampling_at_the_next_token(
        self, tiny_model_dir: Path, data_dir: Path
    ) -> None:
        api = ShapeApi(service_for(tiny_model_dir, data_dir, batch_size=1))
        first = trio.Event()

        def progress(done: int, total: int) -> None:  # in the worker thread
            trio.from_thread.run_sync(first.set)

        with trio.fail_after(60):  # 1000 characters would take many minutes
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: api.generate(n=1000, seed=1, progress=progress))
                await first.wait()
                nursery.cancel_scope.cancel()
        generator = api.service.current_generator()
        assert generator is not None and 1 <= generator.stats.characters < 10  # not 1000
        [character] = await api.generate(n=1, seed=1)  # the worker is free again
        assert character.index == 0

    async def test_an_unset_seed_is_drawn_and_recorded(self, tiny_model_dir: Path, data_dir: Path) -> None:
        api = ShapeApi(service_for(tiny_model_dir, data_dir))
        [character] = await api.generate(n=1)
        [again] = await api.generate(n=1, seed=character.seed)
        assert again.character == character.character
