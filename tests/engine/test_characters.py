"""The demo world in which generated characters' goals are planned (aria_shape's `plannable` reward)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from aria.apps.engine.api import character_goal_planner
from aria.apps.engine.characters import GOAL_OBJECTS, character_domain, character_state, goal_item

SCHEMA = Path(__file__).resolve().parents[2] / "aria/apps/shape/schema/character-1.schema.json"


def schema_goals() -> list[dict[str, str]]:
    """Every {predicate, object} pair aria_shape's character schema allows."""
    variants = json.loads(SCHEMA.read_text())["properties"]["goals"]["items"]["anyOf"]
    return [
        {"predicate": v["properties"]["predicate"]["const"], "object": obj}
        for v in variants
        for obj in v["properties"]["object"]["enum"]
    ]


def sheet(*, abilities: tuple[str, ...] = (), species: str = "human", **stats: int) -> dict[str, Any]:
    scores = {s: 10 for s in ("strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma")}
    scores.update(stats)
    return {
        "name": "Ada Stone",
        "species": species,
        "archetype": "warrior",
        "abilities": [{"name": a, "rank": 1} for a in abilities],
        "stats": scores,
    }


def expected_plannable(character: dict[str, Any], goal: dict[str, str]) -> bool:
    """The world's rules as its documentation states them, written independently of the domain."""
    abilities = {a["name"] for a in character["abilities"]}
    stats = character["stats"]
    obj = goal["object"]
    finds_hermit = "track" in abilities or stats["wisdom"] >= 13
    if obj in ("map", "hermit"):
        return finds_hermit
    if obj == "queen":
        return stats["charisma"] >= 13 or bool(abilities & {"charm", "inspire"})
    if obj == "troll":
        return "fireball" in abilities or stats["strength"] >= 13
    if obj == "dragon":
        return stats["strength"] >= 14
    return True


def simulate(character: dict[str, Any], goal: dict[str, str], plan: list[tuple[Any, ...]]) -> bool:
    """Run the plan's actions from the start; True if each applies and the goal holds at the end."""
    actions = character_domain()._action_dict
    state = character_state(character)
    for step in plan:
        state = actions[step[0]](copy.deepcopy(state), *step[1:])
        if state is False:
            return False
    variable, arg, value = goal_item(character, goal)
    return getattr(state, variable).get(arg) == value


def test_the_world_knows_exactly_the_goals_the_character_schema_allows() -> None:
    allowed = schema_goals()
    assert {(g["predicate"], g["object"]) for g in allowed} == {
        (p, o) for p, objects in GOAL_OBJECTS.items() for o in objects
    }


@pytest.mark.parametrize(
    ("character", "goal", "plan"),
    [
        (sheet(), {"predicate": "at", "object": "tavern"}, []),
        (
            sheet(),
            {"predicate": "at", "object": "castle"},
            [
                ("move", "Ada Stone", "tavern", "harbor"),
                ("meet", "Ada Stone", "captain"),
                ("move", "Ada Stone", "harbor", "castle"),
            ],
        ),
        (
            sheet(),
            {"predicate": "at", "object": "mine"},
            [
                ("take", "Ada Stone", "lantern"),
                ("move", "Ada Stone", "tavern", "forest"),
                ("move", "Ada Stone", "forest", "mine"),
            ],
        ),
        (
            sheet(species="dwarf"),  # sees in the dark: no lantern
            {"predicate": "at", "object": "mine"},
            [("move", "Ada Stone", "tavern", "forest"), ("move", "Ada Stone", "forest", "mine")],
        ),
        (
            sheet(abilities=("lockpick",)),  # no key needed for the amulet
            {"predicate": "has", "object": "amulet"},
            [
                ("move", "Ada Stone", "tavern", "harbor"),
                ("meet", "Ada Stone", "captain"),
                ("move", "Ada Stone", "harbor", "castle"),
                ("take", "Ada Stone", "amulet"),
            ],
        ),
        (
            sheet(abilities=("fireball",)),
            {"predicate": "defeated", "object": "troll"},
            [
                ("take", "Ada Stone", "lantern"),
                ("move", "Ada Stone", "tavern", "forest"),
                ("move", "Ada Stone", "forest", "mine"),
                ("fight", "Ada Stone", "troll", "fireball"),
            ],
        ),
        (
            sheet(abilities=("frost_ward", "arcane_sight"), strength=14),  # no potion, no lantern
            {"predicate": "defeated", "object": "dragon"},
            [
                ("meet", "Ada Stone", "smith"),
                ("take", "Ada Stone", "sword"),
                ("move", "Ada Stone", "tavern", "forest"),
                ("move", "Ada Stone", "forest", "mine"),
                ("fight", "Ada Stone", "troll", "sword"),
                ("fight", "Ada Stone", "dragon", "sword"),
            ],
        ),
    ],
)
def test_plans_follow_the_world_and_the_sheet(
    character: dict[str, Any], goal: dict[str, str], plan: list[tuple[Any, ...]]
) -> None:
    planner = character_goal_planner()
    assert planner.plan(character, goal) == plan
    assert planner.plannable(character, goal) is True


def test_goals_that_need_what_the_sheet_lacks_are_not_plannable_and_say_where_they_fail() -> None:
    planner = character_goal_planner()
    plain = sheet()
    for obj in ("hermit", "queen"):
        assert planner.plan(plain, {"predicate": "knows", "object": obj}) is None
        assert f"('meet', 'Ada Stone', '{obj}')" in planner.explain(
            plain, {"predicate": "knows", "object": obj}
        )
    assert not planner.plannable(plain, {"predicate": "has", "object": "map"})
    assert not planner.plannable(sheet(strength=12), {"predicate": "defeated", "object": "troll"})
    assert planner.plannable(sheet(strength=13), {"predicate": "defeated", "object": "troll"})
    assert not planner.plannable(sheet(strength=13), {"predicate": "defeated", "object": "dragon"})
    why = planner.explain(sheet(strength=13), {"predicate": "defeated", "object": "dragon"})
    assert "('fight', 'Ada Stone', 'dragon', 'sword')" in why
    assert planner.plannable(sheet(wisdom=13), {"predicate": "knows", "object": "hermit"})
    assert planner.plannable(sheet(abilities=("inspire",)), {"predicate": "knows", "object": "queen"})


def test_every_schema_goal_for_generated_characters_matches_the_documented_rules() -> None:
    corpus = pytest.importorskip("aria.apps.shape.corpus", reason="aria_shape's corpus generator")
    rng = random.Random(7)
    planner = character_goal_planner()
    goals = schema_goals()
    verdicts: dict[bool, int] = {True: 0, False: 0}
    for _ in range(60):
        character = corpus.random_character(rng)
        for goal in goals:
            plan = planner.plan(character, goal)
            assert (plan is not None) is expected_plannable(character, goal), (character, goal)
            if plan is not None:
                assert simulate(character, goal, plan), (character, goal, plan)
            verdicts[plan is not None] += 1
    assert verdicts[True] > 0 and verdicts[False] > 0


def test_malformed_sheets_and_goals_are_refused_naming_the_problem() -> None:
    planner = character_goal_planner()
    good = sheet()
    with pytest.raises(ValueError, match="'fly' is not one of at, has, knows, defeated"):
        planner.plannable(good, {"predicate": "fly", "object": "castle"})
    with pytest.raises(ValueError, match="'moon' is not an object of 'at'"):
        planner.plannable(good, {"predicate": "at", "object": "moon"})
    with pytest.raises(ValueError, match="a goal must be"):
        planner.plannable(good, {"predicate": "at"})
    with pytest.raises(ValueError, match="non-empty string 'name'"):
        planner.plannable({**good, "name": ""}, {"predicate": "at", "object": "mine"})
    with pytest.raises(ValueError, match="'stats' must give an integer for each of"):
        planner.plannable({**good, "stats": {"strength": 10}}, {"predicate": "at", "object": "mine"})
    with pytest.raises(TypeError, match="a character must be a dict"):
        planner.plannable(["Ada"], {"predicate": "at", "object": "mine"})  # type: ignore[arg-type]


def test_aria_shapes_plannable_reward_uses_this_planner() -> None:
    rewards = pytest.importorskip("aria.apps.shape.rewards", reason="aria_shape's rewards")
    ((reward, weight),) = rewards.make_rewards("plannable")
    completion = rewards.Completion(prompt=None, text="", token_ids=[], finished=True)
    completion.character = {
        **sheet(),
        "goals": [{"predicate": "at", "object": "mine"}, {"predicate": "knows", "object": "queen"}],
    }
    assert reward([completion]) == [0.5]
    assert weight == 1.0
