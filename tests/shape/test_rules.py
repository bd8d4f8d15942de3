"""The character schema, the rule validator (one test per rule), repair, and the procedural corpus."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from aria.apps.shape import corpus
from aria.apps.shape.rules import RULES, SPECIES_AGE, point_buy_cost, repair, validate
from aria.apps.shape.schema import character_schema, constrained_schema, parse_character, schema_errors
from tests.shape.conftest import needs_xgrammar


@pytest.fixture
def valid() -> dict[str, Any]:
    character = corpus.random_character(random.Random(3))
    character.update(species="human", archetype="warrior", age=30, name="Bren Tall")
    character["abilities"] = [{"name": "cleave", "rank": 2}]
    character["appearance"]["height"] = "average"
    character["appearance"]["avatar"]["height"] = 0.5
    character["relationships"] = [{"name": "Mira", "kind": "friend", "attitude": 2}]
    character["goals"] = [{"predicate": "at", "object": "castle"}]
    character["personality"]["traits"] = ["brave"]
    assert validate(character) == []
    return character


def rules_of(character: dict[str, Any]) -> list[str]:
    return [violation.rule for violation in validate(character)]


class TestCorpus:
    def test_every_procedural_character_is_valid_and_the_corpus_is_reproducible(self) -> None:
        pairs = corpus.corpus(seed=11, count=500)
        assert [(p, validate(c)) for p, c in pairs if validate(c)] == []
        assert corpus.corpus(seed=11, count=5) == pairs[:5]
        assert corpus.corpus(seed=12, count=5) != pairs[:5]

    @needs_xgrammar
    def test_the_grammar_accepts_every_corpus_sheet_exactly_as_serialised(self) -> None:
        import json

        import xgrammar

        grammar = xgrammar.Grammar.from_json_schema(json.dumps(character_schema()), any_whitespace=False)
        sheets = [corpus.serialise(c) for _, c in corpus.corpus(seed=5, count=100)]
        assert all(xgrammar.testing._is_grammar_accept_string(grammar, sheet) for sheet in sheets)
        assert not xgrammar.testing._is_grammar_accept_string(
            grammar, json.dumps(json.loads(sheets[0]), indent=1)
        )

    def test_training_text_uses_the_decoders_serialisation(self) -> None:
        _prompt, character = corpus.corpus(seed=1, count=1)[0]
        text = corpus.training_text(character, "a  brave\nelf")
        assert text.startswith('<|prompt|>a brave elf<|sheet|>{"schema_version": "1", "name": ')
        assert text.endswith("}<|endoftext|>")
        assert corpus.prompt_text(None) == corpus.prompt_text("   ") == "<|sheet|>"


class TestSchema:
    def test_goal_pairs_in_the_schema_match_the_planning_domain(self) -> None:
        from aria.apps.shape.rules import GOAL_OBJECTS
        from aria.apps.shape.schema import character_schema

        options = character_schema()["properties"]["goals"]["items"]["anyOf"]
        pairs = {o["properties"]["predicate"]["const"]: o["properties"]["object"]["enum"] for o in options}
        assert pairs == {predicate: list(objects) for predicate, objects in GOAL_OBJECTS.items()}

    def test_schema_errors_name_the_path(self, valid: dict[str, Any]) -> None:
        broken = copy.deepcopy(valid)
        broken["stats"]["strength"] = 18
        broken["appearance"]["avatar"]["jaw"] = 1.5
        del broken["goals"]
        assert [(e.path, e.message) for e in schema_errors(broken)] == [
            ("", "'goals' is a required property"),
            ("appearance.avatar.jaw", "1.5 is greater than the maximum of 1"),
            ("stats.strength", "18 is greater than the maximum of 15"),
        ]
        assert rules_of(broken) == ["schema", "schema", "schema"]

    def test_parse_rejects_non_json_and_raw_control_characters(self) -> None:
        assert parse_character('{"name": "a\nb"}')[0] is None
        document, errors = parse_character("{}")
        assert document == {} and len(errors) == 15

    def test_constraints_narrow_the_schema_and_bad_ones_are_refused(self) -> None:
        schema = constrained_schema({"species": "elf", "archetype": ["mage", "bard"]})
        assert schema["properties"]["species"]["const"] == "elf"
        assert schema["properties"]["archetype"]["enum"] == ["mage", "bard"]
        with pytest.raises(ValueError, match="constraint on 'stats' is not supported"):
            constrained_schema({"stats": 3})
        with pytest.raises(ValueError, match="constraint species='dragon' is impossible"):
            constrained_schema({"species": "dragon"})
        with pytest.raises(ValueError, match="age=900 is impossible: 900 is greater than the maximum of 800"):
            constrained_schema({"age": 900})


class TestEachRule:
    """One case per rule: the validator names it, with the place and the numbers."""

    def test_age_outside_the_species_range(self, valid: dict[str, Any]) -> None:
        valid.update(species="elf", age=40)
        [violation] = validate(valid)
        assert str(violation) == "age.species_range at age: elf age must be 100..750, not 40"

    def test_point_buy_budget(self, valid: dict[str, Any]) -> None:
        valid["stats"] = dict.fromkeys(valid["stats"], 13)
        [violation] = validate(valid)
        assert violation.rule == "stats.point_buy_budget"
        assert violation.message == "stats cost 30 points; the budget is 27"

    def test_ability_not_allowed_for_archetype(self, valid: dict[str, Any]) -> None:
        valid["abilities"] = [{"name": "fireball", "rank": 1}]
        [violation] = validate(valid)
        assert violation.rule == "abilities.allowed_for_archetype" and violation.path == "abilities.0.name"
        assert "a warrior cannot take 'fireball'" in violation.message

    def test_too_many_abilities_for_archetype(self, valid: dict[str, Any]) -> None:
        valid["abilities"] = [{"name": n, "rank": 1} for n in ("cleave", "taunt", "climb")]
        assert rules_of(valid) == ["abilities.limit_for_archetype"]

    def test_duplicate_ability(self, valid: dict[str, Any]) -> None:
        valid["abilities"] = [{"name": "cleave", "rank": 1}, {"name": "cleave", "rank": 3}]
        assert rules_of(valid) == ["abilities.unique"]

    def test_duplicate_trait(self, valid: dict[str, Any]) -> None:
        valid["personality"]["traits"] = ["kind", "proud", "kind"]
        assert [str(v) for v in validate(valid)] == [
            "personality.traits_unique at personality.traits.2: 'kind' appears twice"
        ]

    def test_relationship_to_self_or_twice(self, valid: dict[str, Any]) -> None:
        valid["relationships"] = [
            {"name": "Bren Tall", "kind": "rival", "attitude": 0},
            {"name": "Mira", "kind": "friend", "attitude": 1},
            {"name": "Mira", "kind": "enemy", "attitude": -2},
        ]
        assert [(v.rule, v.path) for v in validate(valid)] == [
            ("relationships.unique_names", "relationships.0.name"),
            ("relationships.unique_names", "relationships.2.name"),
        ]

    def test_goal_object_of_the_wrong_kind_is_a_schema_error(self, valid: dict[str, Any]) -> None:
        valid["goals"] = [{"predicate": "has", "object": "dragon"}]
        [violation] = validate(valid)
        assert violation.rule == "schema" and violation.path == "goals.0"

    def test_duplicate_goal(self, valid: dict[str, Any]) -> None:
        valid["goals"] = [{"predicate": "at", "object": "mine"}] * 2
        assert rules_of(valid) == ["goals.unique"]

    def test_avatar_height_contradicts_description(self, valid: dict[str, Any]) -> None:
        valid["appearance"]["height"] = "tall"
        valid["appearance"]["avatar"]["height"] = 0.2
        assert rules_of(valid) == ["appearance.avatar_matches_height"]

    def test_every_rule_has_a_case_here(self) -> None:
        tested = {
            "schema",
            "age.species_range",
            "stats.point_buy_budget",
            "abilities.allowed_for_archetype",
            "abilities.limit_for_archetype",
            "abilities.unique",
            "personality.traits_unique",
            "relationships.unique_names",
            "goals.unique",
            "appearance.avatar_matches_height",
        }
        assert tested == set(RULES)

    def test_several_broken_rules_are_all_named(self, valid: dict[str, Any]) -> None:
        valid.update(species="dwarf", age=12)
        valid["stats"] = dict.fromkeys(valid["stats"], 15)
        valid["goals"] = [{"predicate": "knows", "object": "queen"}] * 2
        assert rules_of(valid) == ["age.species_range", "stats.point_buy_budget", "goals.unique"]


class TestRepair:
    def test_repair_fixes_what_it_can_without_inventing(self, valid: dict[str, Any]) -> None:
        valid.update(species="dwarf", age=12)
        valid["stats"] = dict.fromkeys(valid["stats"], 15)
        valid["abilities"] = [{"name": "fireball", "rank": 1}, {"name": "taunt", "rank": 2}]
        valid["goals"] = [{"predicate": "at", "object": "mine"}, {"predicate": "at", "object": "mine"}]
        valid["appearance"]["avatar"]["height"] = 0.9
        fixed = repair(valid)
        assert fixed is not None and validate(fixed) == []
        assert fixed["age"] == SPECIES_AGE["dwarf"][0]
        assert point_buy_cost(fixed["stats"]) <= 27
        assert fixed["abilities"] == [{"name": "taunt", "rank": 2}]
        assert fixed["goals"] == [{"predicate": "at", "object": "mine"}]
        assert fixed["appearance"]["height"] == "tall"
        assert valid["age"] == 12  # the input is left alone

    def test_a_locked_field_that_breaks_a_rule_is_beyond_repair(self, valid: dict[str, Any]) -> None:
        valid.update(species="elf", age=20)
        assert repair(valid, locked={"age": 20}) is None
        assert repair(valid)["age"] == 100
