"""A procedural corpus of valid characters: what the default model is trained on.

:func:`random_character` draws one character that passes every rule (a test checks thousands);
:func:`describe` writes the short prompt a user might have typed for it; :func:`training_text` is
the exact text the model sees, in the same serialisation the constrained decoder enforces
(``json.dumps`` with its default ``", "`` and ``": "`` separators, keys in schema order).
"""

from __future__ import annotations

import json
import random
from typing import Any

from aria.apps.shape.rules import (
    ARCHETYPE_ABILITIES,
    ARCHETYPE_ABILITY_LIMIT,
    GOAL_OBJECTS,
    HEIGHT_RANGE,
    POINT_BUY_BUDGET,
    POINT_BUY_COST,
    SPECIES_AGE,
)
from aria.apps.shape.schema import SCHEMA_VERSION, character_schema, in_schema_order

PROMPT_TOKEN = "<|prompt|>"
SHEET_TOKEN = "<|sheet|>"
END_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (END_TOKEN, PAD_TOKEN, PROMPT_TOKEN, SHEET_TOKEN)

_ONSETS = (
    "b",
    "br",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "th",
    "v",
    "w",
    "z",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ia", "ou")
_CODAS = ("", "", "n", "r", "l", "th", "s", "k", "m", "wyn", "dor", "ric", "wen", "mir")
_PLACES = (
    "a fishing village",
    "the capital",
    "a mountain hold",
    "the deep woods",
    "a desert caravan",
    "a river town",
)
_EVENTS = (
    "lost everything in a fire",
    "was raised by a travelling troupe",
    "served a cruel lord for years",
    "found a strange map in a ruin",
    "survived a shipwreck",
    "was cast out by the elders",
    "studied in secret at night",
    "won a duel against a famous champion",
)
_LINES = (
    "Stay behind me.",
    "I have read about this.",
    "Nobody needs to know.",
    "The gods are watching.",
    "Tracks lead north.",
    "Let me sing you a tale.",
    "Coin first, questions later.",
    "I never forget a face.",
    "We rest when it is done.",
    "That is not how I remember it.",
)
_ENUMS: dict[str, list[Any]] = {}


def _enum(*path: str) -> list[Any]:
    """The allowed values at a path of the schema (``"appearance", "hair"``)."""
    key = "/".join(path)
    if key not in _ENUMS:
        node: dict[str, Any] = character_schema()
        for part in path:
            node = node["items"] if part == "[]" else node["properties"][part]
        _ENUMS[key] = list(node["enum"])
    return _ENUMS[key]


def random_name(rng: random.Random, *, family: bool | None = None) -> str:
    """A pronounceable name matching the schema's pattern (one or two capitalised words)."""

    def word(max_length: int) -> str:
        while True:
            syllables = rng.randint(1, 3)
            text = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
            text += rng.choice(_CODAS)
            if 2 <= len(text) <= max_length:
                return text.capitalize()

    with_family = rng.random() < 0.5 if family is None else family
    return f"{word(10)} {word(12)}" if with_family else word(10)


def _stats(rng: random.Random) -> dict[str, int]:
    names = list(_enum_stats())
    scores = dict.fromkeys(names, 8)
    spend = rng.randint(POINT_BUY_BUDGET - 6, POINT_BUY_BUDGET)
    for _ in range(200):
        name = rng.choice(names)
        if scores[name] == 15:
            continue
        step = POINT_BUY_COST[scores[name] + 1] - POINT_BUY_COST[scores[name]]
        cost = sum(POINT_BUY_COST[s] for s in scores.values())
        if cost + step > spend:
            break
        scores[name] += 1
    return scores


def _enum_stats() -> list[str]:
    return list(character_schema()["properties"]["stats"]["properties"])


def random_character(rng: random.Random) -> dict[str, Any]:
    """One character that satisfies the schema and every rule, drawn from ``rng``."""
    species = rng.choice(_enum("species"))
    archetype = rng.choice(_enum("archetype"))
    name = random_name(rng)
    low, high = SPECIES_AGE[species]
    height_word = rng.choice(_enum("appearance", "height"))
    h_low, h_high = HEIGHT_RANGE[height_word]
    avatar_keys = list(character_schema()["properties"]["appearance"]["properties"]["avatar"]["properties"])
    avatar = {key: round(rng.random(), 2) for key in avatar_keys}
    avatar["height"] = round(rng.uniform(h_low, h_high), 2)
    allowed = ARCHETYPE_ABILITIES[archetype]
    count = rng.randint(1, min(ARCHETYPE_ABILITY_LIMIT[archetype], 4))
    abilities = [{"name": n, "rank": rng.randint(1, 3)} for n in rng.sample(allowed, count)]
    goal_pairs = [(p, o) for p, objects in GOAL_OBJECTS.items() for o in objects]
    goals = [{"predicate": p, "object": o} for p, o in rng.sample(goal_pairs, rng.randint(1, 3))]
    relationships = []
    for _ in range(rng.randint(0, 3)):
        other = random_name(rng)
        if other != name and all(other != r["name"] for r in relationships):
            relationships.append(
                {
                    "name": other,
                    "kind": rng.choice(_enum("relationships", "[]", "kind")),
                    "attitude": rng.randint(-3, 3),
                }
            )
    given = name.split()[0]
    backstory = f"{given} {rng.choice(_EVENTS)} in {rng.choice(_PLACES)}"
    if rng.random() < 0.5:
        backstory += f" and now seeks {rng.choice(_enum('motivations', '[]'))}"
    backstory += "."
    return in_schema_order(
        {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "pronouns": rng.choice(_enum("pronouns")),
            "species": species,
            "archetype": archetype,
            "age": rng.randint(low, high),
            "appearance": {
                "height": height_word,
                "build": rng.choice(_enum("appearance", "build")),
                "hair": rng.choice(_enum("appearance", "hair")),
                "eyes": rng.choice(_enum("appearance", "eyes")),
                "avatar": avatar,
            },
            "personality": {
                **{
                    trait: round(rng.random(), 2)
                    for trait in (
                        "openness",
                        "conscientiousness",
                        "extraversion",
                        "agreeableness",
                        "neuroticism",
                    )
                },
                "traits": rng.sample(_enum("personality", "traits", "[]"), rng.randint(1, 3)),
            },
            "stats": _stats(rng),
            "abilities": abilities,
            "backstory": backstory,
            "motivations": rng.sample(_enum("motivations", "[]"), rng.randint(1, 2)),
            "dialogue": rng.sample(_LINES, rng.randint(1, 2)),
            "relationships": relationships,
            "goals": goals,
        }
    )


def describe(character: dict[str, Any], rng: random.Random) -> str | None:
    """A short request that ``character`` answers (``"a proud elf mage"``), or None for no prompt."""
    roll = rng.random()
    if roll < 0.25:
        return None
    words = []
    if rng.random() < 0.5:
        words.append(character["personality"]["traits"][0])
    if rng.random() < 0.8:
        words.append(character["species"])
    words.append(character["archetype"])
    text = " ".join(words)
    text = ("an " if text[0] in "aeiou" else "a ") + text
    if rng.random() < 0.3:
        text += f" who wants {character['motivations'][0]}"
    return text


def prompt_text(prompt: str | None) -> str:
    """What the model is given before the sheet: an optional request, then the sheet marker."""
    if prompt is None or not prompt.strip():
        return SHEET_TOKEN
    return f"{PROMPT_TOKEN}{' '.join(prompt.split())}{SHEET_TOKEN}"


def serialise(character: dict[str, Any]) -> str:
    """The sheet as the model writes it (the constrained decoder's exact spacing and key order)."""
    return json.dumps(character, ensure_ascii=False)


def training_text(character: dict[str, Any], prompt: str | None) -> str:
    """One training example: prompt, sheet, end marker."""
    return prompt_text(prompt) + serialise(character) + END_TOKEN


def corpus(seed: int, count: int) -> list[tuple[str | None, dict[str, Any]]]:
    """``count`` (prompt, character) pairs drawn reproducibly from ``seed``."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        character = random_character(rng)
        pairs.append((describe(character, rng), character))
    return pairs
