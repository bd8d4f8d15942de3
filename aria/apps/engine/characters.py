"""A small demo world in which a generated RPG character's goals are planned.

aria_shape's character sheets end with 1-3 goals ``{"predicate": P, "object": O}`` meaning that
``P(character, O)`` should hold: ``at`` a place, ``has`` an item, ``knows`` a person, ``defeated`` a
creature (the schema lists the objects). This module turns such a goal into a unigoal of the planner
and plans it in a fixed little world whose rules read the character's sheet (species, archetype,
abilities, stats), so whether a goal is reachable depends on the character:

* Places and roads: the tavern joins the forest, the harbor and the temple; the forest joins the
  mine; the harbor joins the castle. Every character starts at the tavern.
* The mine is dark: entering it needs the lantern, unless the character sees in the dark (a dwarf or
  a gnome, or anyone with ``arcane_sight``). The castle's guards let in only friends of the captain.
* People: the smith (tavern), the captain (harbor), the priest (temple) and the hermit (forest)
  meet anyone who goes there, except that the hermit is found only by someone with ``track`` or
  wisdom 13+. The queen (castle) receives only someone with charisma 13+ or ``charm`` or
  ``inspire``.
* Items: the lantern lies at the tavern; the smith forges the sword, the priest gives the potion and
  the hermit the map to those who know them; the key lies in the mine; the amulet is locked in the
  castle (it needs the key, or ``lockpick``).
* Creatures: the wolf (forest) and the bandit (harbor) fall to the sword or to a fighting ability
  (``cleave``, ``backstab``, ``volley``, ``fireball``; ``tame_beast`` also settles the wolf); the
  troll (mine) to ``fireball`` or to the sword in a hand of strength 13+; the dragon, deep in the
  mine beyond the troll, only to the sword in a hand of strength 14+ protected from its fire (the
  potion or ``frost_ward``), once the troll is defeated.

So every ``at`` goal is plannable for everyone; so are the lantern, sword, potion, key and amulet,
and knowing the smith, the captain and the priest. The map and the hermit need ``track`` or wisdom
13+, the queen needs charisma 13+, ``charm`` or ``inspire``; the troll needs ``fireball`` or strength
13+; the dragon needs strength 14+ (the potion that protects from its fire is anyone's to get, and
such a sword arm also beats the troll). :data:`GOAL_OBJECTS` lists the goals; :func:`goal_item` says
how each becomes a unigoal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from aria.apps.engine.domain import Domain
from aria.apps.engine.planner import Planner, PlanOutcome
from aria.apps.engine.state import State

#: The objects each goal predicate takes, as in aria_shape's character schema (version 1).
GOAL_OBJECTS: dict[str, tuple[str, ...]] = {
    "at": ("tavern", "forest", "castle", "harbor", "temple", "mine"),
    "has": ("sword", "map", "lantern", "key", "potion", "amulet"),
    "knows": ("smith", "queen", "hermit", "captain", "priest"),
    "defeated": ("wolf", "bandit", "troll", "dragon"),
}

START = "tavern"
ROADS: dict[str, tuple[str, ...]] = {
    "tavern": ("forest", "harbor", "temple"),
    "forest": ("tavern", "mine"),
    "harbor": ("tavern", "castle"),
    "temple": ("tavern",),
    "mine": ("forest",),
    "castle": ("harbor",),
}
HOME: dict[str, str] = {
    "smith": "tavern",
    "captain": "harbor",
    "priest": "temple",
    "hermit": "forest",
    "queen": "castle",
}
LAIR: dict[str, str] = {"wolf": "forest", "bandit": "harbor", "troll": "mine", "dragon": "mine"}
# Where each item is obtained, and from whom (None: it lies there).
SOURCE: dict[str, tuple[str, str | None]] = {
    "lantern": ("tavern", None),
    "sword": ("tavern", "smith"),
    "potion": ("temple", "priest"),
    "map": ("forest", "hermit"),
    "key": ("mine", None),
    "amulet": ("castle", None),
}
DARKVISION_SPECIES = frozenset({"dwarf", "gnome"})
# The abilities that win a fight against each creature without a sword.
FIGHTING_ABILITIES: dict[str, frozenset[str]] = {
    "wolf": frozenset({"cleave", "backstab", "volley", "fireball", "tame_beast"}),
    "bandit": frozenset({"cleave", "backstab", "volley", "fireball"}),
    "troll": frozenset({"fireball"}),
    "dragon": frozenset(),
}
# The strength a sword fight against each creature needs.
SWORD_STRENGTH: dict[str, int] = {"wolf": 8, "bandit": 8, "troll": 13, "dragon": 14}

_STATS = ("strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma")


# --------------------------------------------------------------------------------------------------
# What the character can do (read from the state, where the sheet's facts are stored)


def _has_ability(state: State, who: str, ability: str) -> bool:
    return (who, ability) in state.ability


def _stat(state: State, who: str, stat: str) -> int:
    return state.stat[(who, stat)]


def _holds(state: State, who: str, item: str) -> bool:
    return state.has.get((who, item), False)


def _sees_in_dark(state: State, who: str) -> bool:
    return state.species[who] in DARKVISION_SPECIES or _has_ability(state, who, "arcane_sight")


def _may_enter(state: State, who: str, place: str) -> bool:
    if place == "mine":
        return _sees_in_dark(state, who) or _holds(state, who, "lantern")
    if place == "castle":
        return state.knows.get((who, "captain"), False)
    return True


def _receives(state: State, who: str, person: str) -> bool:
    """Whether ``person`` will meet ``who`` (the sheet's side of it; being there is checked apart)."""
    if person == "hermit":
        return _has_ability(state, who, "track") or _stat(state, who, "wisdom") >= 13
    if person == "queen":
        return (
            _stat(state, who, "charisma") >= 13
            or _has_ability(state, who, "charm")
            or _has_ability(state, who, "inspire")
        )
    return True


def _wins(state: State, who: str, creature: str, means: str) -> bool:
    if creature == "dragon":
        protected = _holds(state, who, "potion") or _has_ability(state, who, "frost_ward")
        if not protected or not state.defeated.get((who, "troll"), False):
            return False
    if means == "sword":
        return _holds(state, who, "sword") and _stat(state, who, "strength") >= SWORD_STRENGTH[creature]
    return means in FIGHTING_ABILITIES[creature] and _has_ability(state, who, means)


# --------------------------------------------------------------------------------------------------
# Actions


def move(state: State, who: str, origin: str, destination: str) -> State | bool:
    """Walk one road, if the character is at its start and may enter its end."""
    if state.at[who] != origin or destination not in ROADS[origin] or not _may_enter(state, who, destination):
        return False
    state.at[who] = destination
    return state


def meet(state: State, who: str, person: str) -> State | bool:
    """Get to know ``person`` where they live, if they receive the character."""
    if state.at[who] != HOME[person] or not _receives(state, who, person):
        return False
    state.knows[(who, person)] = True
    return state


def take(state: State, who: str, item: str) -> State | bool:
    """Obtain ``item`` at its place: from whoever gives it (who must know the character), or from the
    ground (the castle's amulet also needs the key or ``lockpick``)."""
    place, giver = SOURCE[item]
    if state.at[who] != place:
        return False
    if giver is not None and not state.knows.get((who, giver), False):
        return False
    if item == "amulet" and not (_holds(state, who, "key") or _has_ability(state, who, "lockpick")):
        return False
    state.has[(who, item)] = True
    return state


def fight(state: State, who: str, creature: str, means: str) -> State | bool:
    """Fight ``creature`` in its lair with ``means`` (``sword`` or an ability); succeeds only if it wins."""
    if state.at[who] != LAIR[creature] or not _wins(state, who, creature, means):
        return False
    state.defeated[(who, creature)] = True
    return state


# --------------------------------------------------------------------------------------------------
# Methods (one per goal predicate, plus the two ways to fight)


def _route(origin: str, destination: str) -> list[str] | None:
    """The shortest road route (breadth-first), both ends included; None when there is none."""
    previous: dict[str, str | None] = {origin: None}
    frontier = deque([origin])
    while frontier:
        place = frontier.popleft()
        if place == destination:
            route = [place]
            while (before := previous[route[-1]]) is not None:
                route.append(before)
            return route[::-1]
        for nxt in ROADS[place]:
            if nxt not in previous:
                previous[nxt] = place
                frontier.append(nxt)
    return None


def _entry_needs(state: State, who: str, place: str) -> list[tuple[Any, ...]]:
    if place == "mine" and not _sees_in_dark(state, who):
        return [("has", (who, "lantern"), True)]
    if place == "castle":
        return [("knows", (who, "captain"), True)]
    return []


def m_travel(state: State, who: str, destination: str) -> list[tuple[Any, ...]] | bool:
    """Meet the last road's entry condition, reach the place before it, then walk the last road."""
    route = _route(state.at[who], destination)
    if route is None or len(route) < 2:
        return False
    return [
        *_entry_needs(state, who, destination),
        ("at", who, route[-2]),
        ("move", who, route[-2], destination),
    ]


def m_obtain(state: State, key: tuple[str, str], value: bool) -> list[tuple[Any, ...]] | bool:
    """Know the giver (or hold the key for the amulet), go to the item's place, take it."""
    who, item = key
    if value is not True or item not in SOURCE:
        return False
    place, giver = SOURCE[item]
    needs: list[tuple[Any, ...]] = []
    if giver is not None:
        needs.append(("knows", (who, giver), True))
    if item == "amulet" and not _has_ability(state, who, "lockpick"):
        needs.append(("has", (who, "key"), True))
    return [*needs, ("at", who, place), ("take", who, item)]


def m_acquaint(state: State, key: tuple[str, str], value: bool) -> list[tuple[Any, ...]] | bool:
    """Go where the person lives and meet them."""
    who, person = key
    if value is not True or person not in HOME:
        return False
    return [("at", who, HOME[person]), ("meet", who, person)]


def m_defeat_by_ability(state: State, key: tuple[str, str], value: bool) -> list[tuple[Any, ...]] | bool:
    """Fight with the first of the character's abilities that beats the creature."""
    who, creature = key
    if value is not True or creature not in LAIR:
        return False
    usable = sorted(a for a in FIGHTING_ABILITIES[creature] if _has_ability(state, who, a))
    if not usable:
        return False
    return [*_lair_needs(who, creature), ("at", who, LAIR[creature]), ("fight", who, creature, usable[0])]


def m_defeat_by_sword(state: State, key: tuple[str, str], value: bool) -> list[tuple[Any, ...]] | bool:
    """Get the sword (and what the lair asks), go to the lair, fight with the sword."""
    who, creature = key
    if value is not True or creature not in LAIR:
        return False
    return [
        ("has", (who, "sword"), True),
        *_lair_needs(who, creature),
        ("at", who, LAIR[creature]),
        ("fight", who, creature, "sword"),
    ]


def _lair_needs(who: str, creature: str) -> list[tuple[Any, ...]]:
    return [("dragon_ready", who)] if creature == "dragon" else []


def m_dragon_guard(state: State, who: str) -> list[tuple[Any, ...]] | bool:
    """Before the dragon: be protected from its fire, and defeat the troll that guards the way."""
    protection = [] if _has_ability(state, who, "frost_ward") else [("has", (who, "potion"), True)]
    return [*protection, ("defeated", (who, "troll"), True)]


def character_domain() -> Domain:
    """The demo world's planning domain (a fresh Domain; the functions are this module's)."""
    domain = Domain("character_goals")
    domain.declare_actions(move, meet, take, fight)
    domain.declare_unigoal_methods("at", m_travel)
    domain.declare_unigoal_methods("has", m_obtain)
    domain.declare_unigoal_methods("knows", m_acquaint)
    domain.declare_unigoal_methods("defeated", m_defeat_by_ability, m_defeat_by_sword)
    domain.declare_task_methods("dragon_ready", m_dragon_guard)
    return domain


# --------------------------------------------------------------------------------------------------
# Characters and goals in, plans out


def character_state(character: Mapping[str, Any]) -> State:
    """The demo world's initial state for ``character`` (standing at the tavern, holding nothing).

    Raises:
        ValueError: if the sheet lacks a field the world reads (name, species, abilities, stats), naming it.
    """
    if not isinstance(character, Mapping):
        raise TypeError(f"a character must be a dict (a character sheet), not {type(character).__name__}")
    who = _name(character)
    species = character.get("species")
    if not isinstance(species, str):
        raise ValueError(f"character {who!r}: 'species' must be a string, not {species!r}")  # noqa: TRY004 - bad data
    abilities = character.get("abilities")
    if not isinstance(abilities, list) or not all(
        isinstance(a, Mapping) and isinstance(a.get("name"), str) for a in abilities
    ):
        raise ValueError(
            f"character {who!r}: 'abilities' must be a list of {{name, rank}}, not {abilities!r}"
        )
    stats = character.get("stats")
    if not isinstance(stats, Mapping) or not all(isinstance(stats.get(s), int) for s in _STATS):
        raise ValueError(
            f"character {who!r}: 'stats' must give an integer for each of {', '.join(_STATS)}, not {stats!r}"
        )
    return State(
        f"world_of_{who}",
        at={who: START},
        has={},
        knows={},
        defeated={},
        species={who: species},
        ability={(who, a["name"]): a.get("rank", 1) for a in abilities},
        stat={(who, s): stats[s] for s in _STATS},
    )


def goal_item(character: Mapping[str, Any], goal: Mapping[str, Any]) -> tuple[Any, ...]:
    """The unigoal a sheet's goal stands for.

    ``at`` becomes ``("at", name, place)`` (a character is in one place); ``has``, ``knows`` and
    ``defeated`` become ``(predicate, (name, object), True)``.

    Raises:
        ValueError: for a goal that is not ``{predicate, object}`` with a predicate and object of the schema.
    """
    who = _name(character)
    if not isinstance(goal, Mapping) or set(goal) != {"predicate", "object"}:
        raise ValueError(
            f"character {who!r}: a goal must be {{'predicate': ..., 'object': ...}}, not {goal!r}"
        )
    predicate, obj = goal["predicate"], goal["object"]
    if predicate not in GOAL_OBJECTS:
        raise ValueError(
            f"character {who!r}: goal predicate {predicate!r} is not one of {', '.join(GOAL_OBJECTS)}"
        )
    if obj not in GOAL_OBJECTS[predicate]:
        raise ValueError(
            f"character {who!r}: {obj!r} is not an object of {predicate!r} "
            f"(one of {', '.join(GOAL_OBJECTS[predicate])})"
        )
    if predicate == "at":
        return ("at", who, obj)
    return (predicate, (who, obj), True)


def _name(character: Mapping[str, Any]) -> str:
    name = character.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a character needs a non-empty string 'name', not {name!r}")
    return name


class CharacterGoalPlanner:
    """Plans a character's goals in the demo world (what aria_shape's ``plannable`` reward asks).

    Args:
        max_expansions: The search bound per goal (the world is small: a goal takes tens of expansions).
    """

    def __init__(self, max_expansions: int = 10_000) -> None:
        self.domain = character_domain()
        self._planner = Planner(self.domain, max_expansions=max_expansions)

    def outcome(self, character: Mapping[str, Any], goal: Mapping[str, Any]) -> PlanOutcome:
        """The full planning outcome (plan, solution tree, stats, and on failure the explanation)."""
        return self._planner.plan(character_state(character), [goal_item(character, goal)])

    def plan(self, character: Mapping[str, Any], goal: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
        """The actions that achieve ``goal`` for ``character`` from the start, or None if there are none.

        Raises:
            ValueError: for a malformed sheet or goal (see :func:`character_state`, :func:`goal_item`).
        """
        outcome = self.outcome(character, goal)
        return list(outcome.plan) if outcome.success else None

    def plannable(self, character: Mapping[str, Any], goal: Mapping[str, Any]) -> bool:
        """Whether ``goal`` can be achieved by ``character`` in the demo world."""
        return self.outcome(character, goal).success

    def explain(self, character: Mapping[str, Any], goal: Mapping[str, Any]) -> str:
        """One line: the plan's length, or why there is none (the deepest failure and what failed there)."""
        return self.outcome(character, goal).message


__all__ = [
    "GOAL_OBJECTS",
    "CharacterGoalPlanner",
    "character_domain",
    "character_state",
    "goal_item",
]
