"""GRPO rewards: each scores a batch of completions in [0, 1].

A reward is any object with a ``name`` and ``__call__(completions) -> list[float]``; rewards with
memory (diversity) also have ``state_dict``/``load_state_dict`` so a resumed run continues exactly.
The ``plannable`` reward asks a :class:`GoalPlanner` whether the character's goals can be reached;
by default aria_engine's planner for its demo world (:func:`engine_planner`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aria.apps.shape.rules import RULES, rule_violations
from aria.apps.shape.schema import schema_errors


@dataclass
class Completion:
    """One sampled completion as the rewards see it."""

    prompt: str | None
    text: str
    token_ids: list[int]
    finished: bool
    character: dict[str, Any] | None = field(init=False, default=None)
    schema_valid: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if not self.finished:
            return
        try:
            document = json.loads(self.text)
        except json.JSONDecodeError:
            return
        if not schema_errors(document):
            self.character = document
            self.schema_valid = True


class Reward(Protocol):
    name: str

    def __call__(self, completions: Sequence[Completion]) -> list[float]: ...


class ValidityReward:
    """1 if the completion ended and is a schema-valid sheet on its own (before any constraint)."""

    name = "validity"

    def __call__(self, completions: Sequence[Completion]) -> list[float]:
        return [1.0 if c.schema_valid else 0.0 for c in completions]


class RulesReward:
    """The share of rules a schema-valid sheet satisfies (0 for an invalid one)."""

    name = "rules"
    _checked = len(RULES) - 1  # every rule but "schema"

    def __call__(self, completions: Sequence[Completion]) -> list[float]:
        scores = []
        for completion in completions:
            if completion.character is None:
                scores.append(0.0)
                continue
            broken = {violation.rule for violation in rule_violations(completion.character)}
            scores.append(1.0 - len(broken) / self._checked)
        return scores


def _features(character: dict[str, Any]) -> set[str]:
    """What makes two characters look alike: their categorical choices and name."""
    features = {f"name={character['name']}"}
    for key in ("pronouns", "species", "archetype"):
        features.add(f"{key}={character[key]}")
    for key in ("height", "build", "hair", "eyes"):
        features.add(f"appearance.{key}={character['appearance'][key]}")
    features.update(f"trait={t}" for t in character["personality"]["traits"])
    features.update(f"ability={a['name']}" for a in character["abilities"])
    features.update(f"motivation={m}" for m in character["motivations"])
    features.update(f"goal={g['predicate']}({g['object']})" for g in character["goals"])
    return features


class DiversityReward:
    """1 minus the highest Jaccard similarity to the last ``window`` valid characters (0 if invalid).

    Characters of the same batch are compared with each other too (in batch order), so a group
    that repeats itself is penalised within the step.
    """

    name = "diversity"

    def __init__(self, window: int = 64) -> None:
        self.window = window
        self._recent: deque[list[str]] = deque(maxlen=window)

    def __call__(self, completions: Sequence[Completion]) -> list[float]:
        scores = []
        for completion in completions:
            if completion.character is None:
                scores.append(0.0)
                continue
            features = _features(completion.character)
            closest = max(
                (len(features & set(other)) / len(features | set(other)) for other in self._recent),
                default=0.0,
            )
            scores.append(1.0 - closest)
            self._recent.append(sorted(features))
        return scores

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self._recent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._recent = deque((list(item) for item in state["recent"]), maxlen=self.window)


class GoalPlanner(Protocol):
    """Decides whether a character's goals are reachable in the demo domain."""

    def plannable(self, character: dict[str, Any], goal: dict[str, str]) -> bool: ...


class PlannableReward:
    """The share of a valid character's goals for which the planner finds a plan (0 if invalid)."""

    name = "plannable"

    def __init__(self, planner: GoalPlanner) -> None:
        self.planner = planner

    def __call__(self, completions: Sequence[Completion]) -> list[float]:
        scores = []
        for completion in completions:
            character = completion.character
            if character is None:
                scores.append(0.0)
                continue
            goals = character["goals"]
            found = sum(1 for goal in goals if self.planner.plannable(character, goal))
            scores.append(found / len(goals))
        return scores


class TokenReward:
    """A toy reward: the share of generated tokens that are in ``token_ids`` (for tests and demos)."""

    def __init__(self, token_ids: Collection[int], name: str = "tokens") -> None:
        self.token_ids = frozenset(token_ids)
        self.name = name

    def __call__(self, completions: Sequence[Completion]) -> list[float]:
        return [
            sum(t in self.token_ids for t in c.token_ids) / len(c.token_ids) if c.token_ids else 0.0
            for c in completions
        ]


REWARD_NAMES = ("validity", "rules", "diversity", "plannable")


def engine_planner() -> GoalPlanner:
    """The planner behind the ``plannable`` reward: aria_engine's demo world, in which a goal is
    reachable or not by rules that read the sheet (species, abilities, stats); see
    ``aria.apps.engine.api.character_goal_planner``. It plans in the calling thread, without a node."""
    from aria.apps.engine.api import character_goal_planner

    return character_goal_planner()


def make_rewards(
    spec: str | Sequence[str], *, diversity_window: int = 64, planner: GoalPlanner | None = None
) -> list[tuple[Reward, float]]:
    """Rewards and weights from ``"validity,rules:2,diversity"`` (weight 1 unless ``:w`` is given).

    Raises:
        ValueError: naming an unknown reward, a bad weight, or a reward given twice.
    """
    items = [part.strip() for part in (spec.split(",") if isinstance(spec, str) else spec) if part.strip()]
    if not items:
        raise ValueError(f"no rewards given; choose from {', '.join(REWARD_NAMES)}")
    chosen: list[tuple[Reward, float]] = []
    seen: set[str] = set()
    for item in items:
        name, _, weight_text = item.partition(":")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ValueError(f"reward {item!r}: weight {weight_text!r} is not a number") from None
        if name in seen:
            raise ValueError(f"reward {name!r} is given twice")
        seen.add(name)
        reward: Reward
        if name == "validity":
            reward = ValidityReward()
        elif name == "rules":
            reward = RulesReward()
        elif name == "diversity":
            reward = DiversityReward(diversity_window)
        elif name == "plannable":
            reward = PlannableReward(planner if planner is not None else engine_planner())
        else:
            raise ValueError(f"unknown reward {name!r}; rewards are: {', '.join(REWARD_NAMES)}")
        chosen.append((reward, weight))
    return chosen
