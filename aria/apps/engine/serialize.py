"""JSON forms of states, multigoals, todo lists and plans, for the service API and storage.

Values map to JSON as themselves where JSON has them (strings, numbers, booleans, null, lists, objects
with string keys). What JSON lacks is tagged with a one-key object: ``{"$tuple": [...]}``,
``{"$set": [...]}``, ``{"$frozenset": [...]}``, and ``{"$map": [[key, value], ...]}`` for a dict
whose keys are not all strings (or that has a key starting with ``$``, so it cannot be mistaken for
a tag). A todo item or plan step is a JSON array ``[name, arg, ...]`` (a tuple again when read back);
a multigoal is ``{"$multigoal": {"name": ..., "vars": {...}}}``; a state is
``{"name": ..., "vars": {variable: value}}``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aria.apps.engine.errors import SerializationError
from aria.apps.engine.state import FlatDict, MixedDict, Multigoal, State

_TAGS = ("$tuple", "$set", "$frozenset", "$map", "$multigoal")


def value_to_json(value: Any, where: str = "value") -> Any:
    """The JSON form of a value held in a state (see the module doc).

    Raises:
        SerializationError: for a value JSON cannot represent (an object, a NaN...), naming ``where``.
    """
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is int:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise SerializationError(f"{where}: {value!r} has no JSON form")
        return value
    if kind is list:
        return [value_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {"$tuple": [value_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind is set or kind is frozenset:
        members = [value_to_json(v, f"{where} member") for v in value]
        members.sort(key=lambda m: json.dumps(m, sort_keys=True))
        return {"$set" if kind is set else "$frozenset": members}
    if kind is dict or kind is FlatDict or kind is MixedDict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: value_to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            "$map": [
                [value_to_json(k, f"{where} key"), value_to_json(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    if isinstance(value, Multigoal):
        return {"$multigoal": multigoal_to_json(value)}
    raise SerializationError(f"{where}: a {kind.__name__} ({value!r:.100}) has no JSON form")


def value_from_json(data: Any, where: str = "value") -> Any:
    """The value a JSON form stands for (the inverse of :func:`value_to_json`)."""
    if isinstance(data, list):
        return [value_from_json(v, f"{where}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, dict):
        if len(data) == 1:
            ((tag, body),) = data.items()
            if tag == "$tuple":
                return tuple(value_from_json(v, where) for v in _list(body, where, tag))
            if tag == "$set":
                return {_hashable(value_from_json(v, where), where) for v in _list(body, where, tag)}
            if tag == "$frozenset":
                return frozenset(_hashable(value_from_json(v, where), where) for v in _list(body, where, tag))
            if tag == "$map":
                result = {}
                for pair in _list(body, where, tag):
                    if not isinstance(pair, list) or len(pair) != 2:
                        raise SerializationError(
                            f"{where}: a $map entry must be [key, value], not {pair!r:.100}"
                        )
                    result[_hashable(value_from_json(pair[0], where), where)] = value_from_json(
                        pair[1], where
                    )
                return result
            if tag == "$multigoal":
                return multigoal_from_json(body)
        for key in data:
            if key.startswith("$"):
                raise SerializationError(f"{where}: unknown tag {key!r} (known: {', '.join(_TAGS)})")
        return {k: value_from_json(v, f"{where}[{k!r}]") for k, v in data.items()}
    if isinstance(data, float) and not math.isfinite(data):
        raise SerializationError(f"{where}: {data!r} is not a JSON number")
    if data is None or isinstance(data, str | int | float | bool):
        return data
    raise SerializationError(f"{where}: {type(data).__name__} is not a JSON value")


def _list(body: Any, where: str, tag: str) -> list[Any]:
    if not isinstance(body, list):
        raise SerializationError(f"{where}: {tag} must hold a list, not {type(body).__name__}")
    return body


def _hashable(value: Any, where: str) -> Any:
    try:
        hash(value)
    except TypeError:
        raise SerializationError(f"{where}: {value!r:.100} cannot be a set member or map key") from None
    return value


def state_to_json(state: State) -> dict[str, Any]:
    """``{"name": ..., "vars": {...}}`` for a state."""
    if not isinstance(state, State):
        raise SerializationError(f"expected a State, got {type(state).__name__}")
    return {
        "name": state.__name__,
        "vars": {
            name: value_to_json(value, f"state {state.__name__!r} variable {name!r}")
            for name, value in ((n, getattr(state, n)) for n in state.state_vars())
        },
    }


def state_from_json(data: Any, state_class: type[State] = State) -> State:
    """The state a JSON form stands for.

    Raises:
        SerializationError: if ``data`` is not ``{"name": str, "vars": {str: value}}``.
    """
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("name"), str)
        or not isinstance(data.get("vars"), dict)
    ):
        raise SerializationError(f'a state must be {{"name": str, "vars": {{...}}}}, not {data!r:.200}')
    extra = set(data) - {"name", "vars"}
    if extra:
        raise SerializationError(f"state {data['name']!r}: unknown keys {sorted(extra)}")
    variables = {}
    for name, value in data["vars"].items():
        if not name.isidentifier():
            raise SerializationError(f"state {data['name']!r}: {name!r} is not a valid state-variable name")
        variables[name] = value_from_json(value, f"state {data['name']!r} variable {name!r}")
    return state_class(data["name"], **variables)


def multigoal_to_json(multigoal: Multigoal) -> dict[str, Any]:
    return {
        "name": multigoal.__name__,
        "vars": {name: value_to_json(getattr(multigoal, name), name) for name in multigoal.state_vars()},
    }


def multigoal_from_json(data: Any) -> Multigoal:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("name"), str)
        or not isinstance(data.get("vars"), dict)
    ):
        raise SerializationError(f'a multigoal must be {{"name": str, "vars": {{...}}}}, not {data!r:.200}')
    return Multigoal(data["name"], **{k: value_from_json(v, k) for k, v in data["vars"].items()})


def item_to_json(item: Any) -> Any:
    """A todo item or plan step: ``[name, arg...]``, or ``{"$multigoal": ...}``."""
    if isinstance(item, Multigoal) or type(item).__name__ == "Multigoal":
        return {"$multigoal": multigoal_to_json(item)}
    if isinstance(item, tuple | list):
        return [value_to_json(part, f"todo item {item!r:.100}") for part in item]
    if item is None:
        return None
    raise SerializationError(f"{item!r:.100} is not a todo item (a tuple or a Multigoal)")


def item_from_json(data: Any) -> Any:
    """The todo item a JSON form stands for (arrays become tuples)."""
    if isinstance(data, list):
        if not data or not isinstance(data[0], str):
            raise SerializationError(
                f"a todo item must be a non-empty array starting with a name, not {data!r:.100}"
            )
        return tuple(value_from_json(part, f"todo item {data!r:.100}") for part in data)
    if isinstance(data, dict) and set(data) == {"$multigoal"}:
        return multigoal_from_json(data["$multigoal"])
    raise SerializationError(f"{data!r:.100} is not a todo item (an array or a $multigoal)")


def todo_to_json(todo_list: list[Any]) -> list[Any]:
    return [item_to_json(item) for item in todo_list]


def todo_from_json(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise SerializationError(f"a todo list must be an array, not {type(data).__name__}")
    return [item_from_json(item) for item in data]


plan_to_json = todo_to_json
plan_from_json = todo_from_json
