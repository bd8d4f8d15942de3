"""GRPO: the reward goes up on a toy task, checkpoints resume exactly, the child process recovers."""

from __future__ import annotations

import copy
import json
import os
import signal
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
import trio

from aria.apps.shape import decoding
from aria.apps.shape.grpo import CheckpointStore, GRPOConfig, GRPOTrainer
from aria.apps.shape.rewards import (
    Completion,
    DiversityReward,
    RulesReward,
    TokenReward,
    ValidityReward,
    make_rewards,
)
from aria.apps.shape.schema import character_schema
from aria.apps.shape.settings import ShapeSection
from aria.apps.shape.training import grpo_settings, prepare_run, read_metrics, run_status, training_child
from aria.supervisor import AutoShutdown, Supervisor
from tests.shape.conftest import needs_xgrammar, tiny_random_model


def even_tokens(tokenizer: Any) -> TokenReward:
    """Toy reward: the share of generated tokens with an even id (about 0.5 for a random model)."""
    return TokenReward(range(0, len(tokenizer), 2), name="even")


def toy_trainer(
    tokenizer: Any, steps: int, store: CheckpointStore | None = None, **knobs: Any
) -> GRPOTrainer:
    policy = tiny_random_model(tokenizer, seed=0)
    config = GRPOConfig(
        **{"max_new_tokens": 24, "learning_rate": 1e-2, "kl_beta": 0.0, "seed": 3, **knobs, "steps": steps}
    )
    return GRPOTrainer(
        policy, copy.deepcopy(policy), tokenizer, [(even_tokens(tokenizer), 1.0)], config, checkpoints=store
    )


class TestLearning:
    def test_grpo_raises_the_mean_toy_reward(self, tiny_tokenizer: Any) -> None:
        history = toy_trainer(tiny_tokenizer, steps=30).train()
        first = [r.reward for r in history[:8]]
        last = [r.reward for r in history[-8:]]
        # Each step averages 16 completions of 24 tokens; compare 8 steps at each end with a t statistic.
        spread = ((statistics.variance(first) + statistics.variance(last)) / 8) ** 0.5
        assert statistics.mean(last) - statistics.mean(first) > 0.1
        assert (statistics.mean(last) - statistics.mean(first)) / spread > 4
        assert all(r.kl >= 0 for r in history) and history[-1].kl > 0

    def test_the_same_seed_gives_the_same_run_and_the_kl_term_holds_the_policy_back(
        self, tiny_tokenizer: Any
    ) -> None:
        free = toy_trainer(tiny_tokenizer, steps=12).train()
        again = toy_trainer(tiny_tokenizer, steps=12).train()
        assert [r.to_dict() | {"seconds": 0} for r in free] == [r.to_dict() | {"seconds": 0} for r in again]
        anchored = toy_trainer(tiny_tokenizer, steps=12, kl_beta=5.0).train()
        assert anchored[-1].kl < free[-1].kl

    def test_group_advantages_are_normalised_within_each_group(self, tiny_tokenizer: Any) -> None:
        class Scripted:
            name = "scripted"

            def __call__(self, completions: list[Completion]) -> list[float]:
                return [float(i % 2) for i in range(len(completions))]

        trainer = toy_trainer(tiny_tokenizer, steps=1)
        trainer.rewards = [(Scripted(), 2.0)]
        captured: dict[str, list[float]] = {}
        original = trainer._update

        def spy(sequences: Any, starts: Any, masks: Any, advantages: list[float]) -> Any:
            captured["advantages"] = advantages
            return original(sequences, starts, masks, advantages)

        trainer._update = spy  # type: ignore[method-assign]
        report = trainer.train_step()
        assert report.reward == pytest.approx(1.0) and report.rewards == {"scripted": 0.5}
        assert captured["advantages"] == pytest.approx([-1.0, 1.0] * 8, abs=1e-3)


class TestCheckpoints:
    def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(
        self, tiny_tokenizer: Any, tmp_path: Path
    ) -> None:
        straight = toy_trainer(
            tiny_tokenizer, steps=4, store=CheckpointStore(tmp_path / "a"), checkpoint_every=2
        )
        straight.train()
        interrupted = toy_trainer(
            tiny_tokenizer, steps=2, store=CheckpointStore(tmp_path / "b"), checkpoint_every=2
        )
        interrupted.train()
        resumed = toy_trainer(
            tiny_tokenizer, steps=4, store=CheckpointStore(tmp_path / "b"), checkpoint_every=2
        )
        assert resumed.resume() == 2
        resumed.train()
        assert [r.reward for r in resumed.history] == [r.reward for r in straight.history]
        for (name, expected), (_, actual) in zip(
            straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
        ):
            assert torch.equal(expected, actual), name
        assert CheckpointStore(tmp_path / "b").steps() == [2, 4]

    def test_a_checkpoint_packed_into_one_file_resumes_the_run_exactly(
        self, tiny_tokenizer: Any, tmp_path: Path
    ) -> None:
        from aria.apps.shape.errors import TrainingFailed

        straight = toy_trainer(tiny_tokenizer, steps=3)
        straight.train()
        first = CheckpointStore(tmp_path / "first")
        toy_trainer(tiny_tokenizer, steps=2, store=first, checkpoint_every=2).train()
        packed = first.pack(2, tmp_path / "step-2.safetensors")
        elsewhere = CheckpointStore(tmp_path / "elsewhere")  # another node, a wiped disk
        assert elsewhere.unpack(packed) == 2 and elsewhere.steps() == [2]
        resumed = toy_trainer(tiny_tokenizer, steps=3, store=elsewhere)
        assert resumed.resume() == 2
        resumed.train()
        assert [r.reward for r in resumed.history] == [r.reward for r in straight.history]
        for (name, expected), (_, actual) in zip(
            straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
        ):
            assert torch.equal(expected, actual), name
        (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
        with pytest.raises(TrainingFailed, match=r"cannot read packed checkpoint .*junk\.safetensors"):
            elsewhere.unpack(tmp_path / "junk.safetensors")
        with pytest.raises(TrainingFailed, match=r"cannot pack checkpoint .*step-000007"):
            first.pack(7, tmp_path / "step-7.safetensors")

    def test_a_checkpoint_that_does_not_fit_is_refused(self, tiny_tokenizer: Any, tmp_path: Path) -> None:
        from aria.apps.shape.errors import TrainingFailed
        from aria.apps.shape.model import random_model, tiny_config

        toy_trainer(tiny_tokenizer, steps=1, store=CheckpointStore(tmp_path)).train()
        bigger = random_model(
            tiny_config(len(tiny_tokenizer), tiny_tokenizer, hidden_size=64, head_dim=16), 0
        )
        trainer = GRPOTrainer(
            bigger,
            copy.deepcopy(bigger),
            tiny_tokenizer,
            [],
            GRPOConfig(steps=2),
            checkpoints=CheckpointStore(tmp_path),
        )
        with pytest.raises(TrainingFailed, match=r"cannot load checkpoint .*step-000001"):
            trainer.resume()


@needs_xgrammar
class TestConstrainedSampling:
    def test_log_probs_are_those_of_the_masked_distribution(self, tiny_tokenizer: Any) -> None:
        policy = tiny_random_model(tiny_tokenizer, seed=0)
        grammar = decoding.Grammars(tiny_tokenizer, policy.config.vocab_size).compile(character_schema())
        config = GRPOConfig(
            steps=1, group_size=2, prompts_per_step=1, max_new_tokens=40, constrained_sampling=True
        )
        trainer = GRPOTrainer(
            policy, copy.deepcopy(policy), tiny_tokenizer, [(ValidityReward(), 1.0)], config, grammar=grammar
        )
        report = trainer.train_step()
        # Every sample is cut at 40 tokens here, so invalid: equal rewards, zero advantages, no update.
        assert report.rewards == {"validity": 0.0} and report.kl == pytest.approx(0.0, abs=1e-6)
        prompt = trainer._prompt_ids(None)
        [sample] = decoding.sample(
            policy,
            prompt,
            [1],
            eos_token_id=tiny_tokenizer.eos_token_id,
            pad_token_id=tiny_tokenizer.pad_token_id,
            decode=tiny_tokenizer.decode,
            grammar=grammar,
            vocab_size=policy.config.vocab_size,
            max_new_tokens=10,
            keep_masks=True,
        )
        sequence = torch.tensor([[*prompt, *sample.token_ids]])
        bitmask = torch.full((1, sequence.shape[1] - 1, sample.masks[0].shape[0]), -1, dtype=torch.int32)
        for offset, mask in enumerate(sample.masks):
            bitmask[0, len(prompt) - 1 + offset] = mask
        masked = trainer._token_logprobs(policy, sequence, torch.ones_like(sequence), bitmask)
        plain = trainer._token_logprobs(policy, sequence, torch.ones_like(sequence), None)
        generated = slice(len(prompt) - 1, None)
        masked, plain = masked.detach()[0, generated], plain.detach()[0, generated]
        # Renormalised over the tokens the grammar allows: never less likely, and often more.
        assert (masked >= plain - 1e-5).all() and (masked > plain + 1e-3).any() and (masked <= 0).all()


class TestRewards:
    def test_validity_rules_and_diversity(self) -> None:
        import random

        from aria.apps.shape import corpus

        good = corpus.random_character(random.Random(1))
        broken = {**good, "age": 5000 if good["species"] != "elf" else 1}
        completions = [
            Completion(None, json.dumps(good), [1, 2], True),
            Completion(None, json.dumps(good), [1, 2], True),
            Completion(None, json.dumps(good)[:-1], [1], True),
            Completion(None, json.dumps(good), [1], False),
        ]
        assert ValidityReward()(completions) == [1.0, 1.0, 0.0, 0.0]
        assert RulesReward()(completions) == [1.0, 1.0, 0.0, 0.0]
        diversity = DiversityReward(window=4)
        assert diversity(completions) == [1.0, 0.0, 0.0, 0.0]  # the second repeats the first
        restored = DiversityReward(window=4)
        restored.load_state_dict(json.loads(json.dumps(diversity.state_dict())))
        assert restored(completions[:1]) == [0.0]
        assert ValidityReward()([Completion(None, json.dumps(broken), [1], True)]) == [0.0]

    def test_reward_specs_are_checked(self) -> None:
        assert [(r.name, w) for r, w in make_rewards("validity, rules:2")] == [
            ("validity", 1.0),
            ("rules", 2.0),
        ]
        with pytest.raises(ValueError, match="unknown reward 'style'; rewards are: validity, rules"):
            make_rewards("validity,style")
        with pytest.raises(ValueError, match="weight 'x' is not a number"):
            make_rewards("rules:x")
        with pytest.raises(ValueError, match="'rules' is given twice"):
            make_rewards("rules,rules")


class TestSupervisedRun:
    def test_prepare_run_refuses_to_change_an_existing_run(self, tmp_path: Path) -> None:
        settings = ShapeSection()
        run = prepare_run(tmp_path, "r1", model="m", rewards="validity", grpo=grpo_settings(settings, 5, 0))
        assert (
            prepare_run(tmp_path, "r1", model="m", rewards="validity", grpo=grpo_settings(settings, 9, 0))
            == run
        )
        with pytest.raises(ValueError, match="training run 'r1' exists with other settings"):
            prepare_run(tmp_path, "r1", model="m", rewards="rules", grpo=grpo_settings(settings, 9, 0))
        with pytest.raises(ValueError, match=r"run name '\.\./x' must be"):
            prepare_run(tmp_path, "../x", model="m", rewards="rules", grpo=grpo_settings(settings, 9, 0))

    @pytest.mark.slow
    async def test_a_run_that_keeps_crashing_is_given_up_without_escalating(self, tmp_path: Path) -> None:
        settings = ShapeSection()
        run_dir = prepare_run(
            tmp_path,
            "doomed",
            model=str(tmp_path / "no-such-model"),
            rewards="validity",
            grpo=grpo_settings(settings, 2, 0),
            device="cpu",
        )
        lines: list[str] = []
        spec = training_child(
            run_dir, on_line=lambda stream, line: lines.append(line), significant=True, max_crashes=2
        )
        supervisor = Supervisor([spec], intensity=5, period=120.0, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT)
        with trio.fail_after(120):
            await supervisor.run()  # returns: the run was given up, nothing escalated
        failures = [line for line in lines if line.startswith("training failed:")]
        assert len(failures) == 2 and "cannot load model" in failures[0] and "no-such-model" in failures[0]
        assert run_status(run_dir)["done_steps"] == 0

    @pytest.mark.slow
    async def test_a_killed_training_process_is_restarted_and_resumes(
        self, tiny_model_dir: Path, tmp_path: Path
    ) -> None:
        settings = ShapeSection(
            grpo_group_size=2, grpo_prompts_per_step=1, grpo_max_new_tokens=12, grpo_checkpoint_every=1
        )
        run_dir = prepare_run(
            tmp_path,
            "killed",
            model=str(tiny_model_dir),
            rewards="validity,rules,diversity",
            grpo=grpo_settings(settings, 6, 0),
            device="cpu",
        )
        events: list[dict[str, Any]] = []
        child: dict[str, int] = {}
        killed = trio.Event()

        def on_line(stream: str, line: str) -> None:
            if stream != "stdout" or not line.startswith("{"):
                return
            event = json.loads(line)
            events.append(event)
            if event["event"] == "started":
                child["pid"] = event["pid"]
            if event["event"] == "checkpoint" and event["step"] == 2 and not killed.is_set():
                os.kill(child["pid"], signal.SIGKILL)  # a crash right after a checkpoint
                killed.set()

        spec = training_child(run_dir, on_line=on_line, significant=True)
        supervisor = Supervisor([spec], intensity=2, period=120.0, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT)
        with trio.fail_after(240):
            await supervisor.run()
        assert killed.is_set()
        kinds = [e["event"] for e in events]
        restart = kinds.index("started", 1)
        saved_before_restart = [e["step"] for e in events[:restart] if e["event"] == "checkpoint"]
        # The child may get a step further before the kill lands; it resumes from its newest checkpoint.
        assert events[restart]["resumed_from"] == saved_before_restart[-1] >= 2
        assert kinds.count("started") == 2 and kinds[-1] == "done"
        assert [m["step"] for m in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6]
        status = run_status(run_dir)
        assert status["done_steps"] == 6 and status["checkpoints"] == [5, 6] and status["model"] is not None


class TestPlannable:
    def test_the_share_of_goals_the_planner_can_reach(self) -> None:
        import random

        from aria.apps.shape import corpus
        from aria.apps.shape.rewards import PlannableReward

        class NoMonsters:
            """A planner for a world without monsters: nothing can be defeated."""

            def plannable(self, character: dict[str, Any], goal: dict[str, str]) -> bool:
                return goal["predicate"] != "defeated"

        character = corpus.random_character(random.Random(2))
        character["goals"] = [
            {"predicate": "at", "object": "mine"},
            {"predicate": "defeated", "object": "troll"},
        ]
        completions = [Completion(None, json.dumps(character), [1], True), Completion(None, "{", [1], True)]
        assert PlannableReward(NoMonsters())(completions) == [0.5, 0.0]

    def test_the_reward_asks_aria_engines_planner_about_the_sheet(self) -> None:
        import random

        from aria.apps.shape import corpus

        ((reward, weight),) = make_rewards("plannable")
        assert reward.name == "plannable" and weight == 1.0
        character = corpus.random_character(random.Random(2))
        character["goals"] = [
            {"predicate": "at", "object": "castle"},  # anyone: befriend the captain at the harbor
            {"predicate": "defeated", "object": "dragon"},  # a sword arm of strength 14+
        ]
        weak = {**character, "stats": {**character["stats"], "strength": 8}}
        strong = {**character, "stats": {**character["stats"], "strength": 15}}
        completions = [Completion(None, json.dumps(c), [1], True) for c in (weak, strong)]
        assert reward(completions) == [0.5, 1.0]
