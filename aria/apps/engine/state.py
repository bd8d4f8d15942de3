"""States and multigoals, GTPyhop-compatible, with cheap copy-on-write children.

A :class:`State` is what GTPyhop users know: an object whose attributes are state variables, usually
dictionaries (``state.pos['a'] = 'table'``). The same bindings read as predicate-subject-object
triples (``('pos', 'a', 'table')``), which is the representation the seed used; :meth:`State.triples`,
:meth:`State.from_triples` and the small triple-store methods (:meth:`State.get`, :meth:`State.put`,
:meth:`State.retract`, :meth:`State.match`) work on any state, so both views plan with one engine.

Why copy-on-write: GTPyhop deep-copies the whole state before every action, which dominates its cost
on large states. The planner instead gives an action a *child* (:func:`cow_child`) that starts with
only the parent's immutable bindings; a container-valued variable (a dict, list, set...) is copied
the first time the action reads it, through ``__getattr__``, so an action pays only for the
variables it touches. :func:`seal` then shares the untouched variables with the parent. Sharing is
safe because the planner never mutates a state after sealing it, and :meth:`State.copy` (what users
call) always makes a fully private copy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from typing import Any

# Values that never need copying: immutable and holding no references to mutable ones.
_ATOMIC: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes, complex})


_ATOMIC_OR_NESTED: frozenset[type] = _ATOMIC | {tuple, frozenset}


def _all_atomic(values: Iterable[Any]) -> bool:
    """True if every value is atomic, or a tuple/frozenset of atomic values (checked in C where possible).

    ``values`` must be re-iterable (a list, tuple, set or dict view).
    """
    kinds = set(map(type, values))
    if kinds <= _ATOMIC:
        return True
    if kinds <= _ATOMIC_OR_NESTED:
        return all(type(v) in _ATOMIC or _all_atomic(v) for v in values)
    return False


def private_copy(value: Any) -> Any:
    """A copy of ``value`` that shares nothing mutable with it (fast paths for built-in containers).

    Equivalent to ``copy.deepcopy`` for the values states hold, but built-in containers are copied
    structurally without deepcopy's memo bookkeeping: a dict of strings, numbers and booleans is one
    ``dict.copy`` (C speed). Aliasing *between* two variables, or inside one built-in container, is
    not preserved; objects of other types (and structures nested deeper than 64 levels, which could be
    cyclic) go through ``copy.deepcopy``.
    """
    return _copy_tree(value, 0)


_MAX_STRUCTURAL_DEPTH = 64


def _copy_tree(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if depth > _MAX_STRUCTURAL_DEPTH:
        return copy.deepcopy(value)
    if kind is dict:
        if _all_atomic(value.values()):
            return value.copy()
        return {key: _copy_tree(item, depth + 1) for key, item in value.items()}
    if kind is list:
        if _all_atomic(value):
            return value.copy()
        return [_copy_tree(item, depth + 1) for item in value]
    if kind is set or kind is frozenset:
        return value.copy() if kind is set else value  # members are hashable, so immutable in practice
    if kind is tuple:
        return value if _all_atomic(value) else tuple(_copy_tree(item, depth + 1) for item in value)
    return copy.deepcopy(value)


_copy_counter = 0


def _name_for_copy(old_name: str) -> str:
    """``name_copy_N`` (or the number replaced when ``name`` already ends in ``_copy_N``), like GTPyhop."""
    global _copy_counter
    number = _copy_counter
    _copy_counter += 1
    if re.search(r"_copy_[0-9]*$", old_name):
        return re.sub(r"_[0-9]*$", f"_{number}", old_name)
    return f"{old_name}_copy_{number}"


class State:
    """A state of the world: named state variables, usually dictionaries keyed by an object.

    ``State('s', loc={'alice': 'home'})`` and ``s = State('s'); s.loc = {'alice': 'home'}`` are the
    same. Two states are equal when their variables are (names are ignored). Attribute access to a
    missing variable raises ``AttributeError`` naming the state and the variable.
    """

    # _cow_parent is a slot, not an attribute, so it never shows up among the state variables.
    __slots__ = ("__dict__", "_cow_deleted", "_cow_parent")

    def __init__(self, state_name: str, **variables: Any) -> None:
        self._cow_parent = None
        self._cow_deleted = None
        self.__name__ = state_name
        vars(self).update(variables)

    def __getattr__(self, name: str) -> Any:
        # Only reached when `name` is not in the instance dict: either a copy-on-write child reading a
        # variable it has not copied yet, or a variable that does not exist.
        if name in ("_cow_parent", "_cow_deleted"):
            return None  # a subclass whose __init__ did not call ours
        parent = self._cow_parent
        if parent is not None and not name.startswith("__"):
            parent_vars = parent.__dict__
            if name in parent_vars:
                value = private_copy(parent_vars[name])
                self.__dict__[name] = value
                return value
        if name.startswith("__"):
            raise AttributeError(name)
        state_name = self.__dict__.get("__name__", "?")
        raise AttributeError(f"state {state_name!r} has no state variable {name!r}")

    def __delattr__(self, name: str) -> None:
        if self._cow_parent is not None and name in self._cow_parent.__dict__:
            # A child deleting a variable it has not copied: remember it, so seal() does not share it back.
            self._cow_deleted = (self._cow_deleted or frozenset()) | {name}
            self.__dict__.pop(name, None)
            return
        object.__delattr__(self, name)

    def __str__(self) -> str:
        return f"<State {self.__name__}>"

    def __repr__(self) -> str:
        return _make_repr(self, "State")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return False
        return _variables(self) == _variables(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __copy__(self) -> State:
        return self.copy(self.__name__)

    def __deepcopy__(self, memo: dict[int, Any]) -> State:
        return self.copy(self.__name__)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_state, (type(self), self.__name__, _variables(self)))

    def copy(self, new_name: str | None = None) -> State:
        """A fully private copy (nothing mutable shared), named ``new_name`` or ``<name>_copy_<n>``."""
        the_copy = type(self).__new__(type(self))
        the_copy._cow_parent = None
        the_copy._cow_deleted = None
        the_copy.__dict__.update({name: private_copy(value) for name, value in _variables(self).items()})
        the_copy.__dict__["__name__"] = new_name or _name_for_copy(self.__name__)
        # Keep the variables after the name, in their original order (display and repr follow it).
        the_copy.__dict__ = {"__name__": the_copy.__dict__.pop("__name__"), **the_copy.__dict__}
        return the_copy

    def display(self, heading: str | None = None) -> None:
        """Print the state's variables and values, under ``heading`` (default: the type name)."""
        _print_object(self, heading)

    def state_vars(self) -> list[str]:
        """The names of the state's variables."""
        return [name for name in _variables(self)]

    # ----------------------------------------------------------------------------------------------
    # The triple view: (predicate, subject, object) <-> state.predicate[subject] = object

    @classmethod
    def from_triples(cls, state_name: str, triples: Iterable[tuple[str, Any, Any]]) -> State:
        """A state holding ``state.predicate[subject] = object`` for each triple.

        Raises:
            ValueError: for a triple that is not a 3-tuple with a string predicate, or two triples
                giving one (predicate, subject) two different objects.
        """
        state = cls(state_name)
        for triple in triples:
            if not isinstance(triple, tuple | list) or len(triple) != 3 or not isinstance(triple[0], str):
                raise ValueError(
                    f"state {state_name!r}: {triple!r} is not a (predicate, subject, object) triple"
                )
            predicate, subject, obj = triple
            bindings = state.__dict__.setdefault(predicate, {})
            if subject in bindings and bindings[subject] != obj:
                raise ValueError(
                    f"state {state_name!r}: ({predicate!r}, {subject!r}) is given two objects, "
                    f"{bindings[subject]!r} and {obj!r}"
                )
            bindings[subject] = obj
        return state

    def triples(self) -> Iterator[tuple[str, Any, Any]]:
        """Every binding of every dictionary-valued variable as a (predicate, subject, object) triple."""
        for predicate, value in _variables(self).items():
            if isinstance(value, dict):
                for subject, obj in value.items():
                    yield (predicate, subject, obj)

    def get(self, predicate: str, subject: Any, default: Any = None) -> Any:
        """The object of (predicate, subject), or ``default`` when there is none."""
        bindings = self.__dict__.get(predicate)
        if bindings is None and self._cow_parent is not None and predicate in self._cow_parent.__dict__:
            bindings = getattr(self, predicate)
        return bindings.get(subject, default) if isinstance(bindings, dict) else default

    def put(self, predicate: str, subject: Any, obj: Any) -> None:
        """Bind (predicate, subject) to ``obj``, creating the predicate's dictionary if needed."""
        if predicate not in self.__dict__ and not (
            self._cow_parent is not None and predicate in self._cow_parent.__dict__
        ):
            self.__dict__[predicate] = {}
        getattr(self, predicate)[subject] = obj

    def retract(self, predicate: str, subject: Any) -> None:
        """Remove the binding of (predicate, subject), if any."""
        bindings = self.get(predicate, subject, _MISSING)
        if bindings is not _MISSING:
            del getattr(self, predicate)[subject]

    def match(
        self, predicate: str | None = None, subject: Any = None, obj: Any = None
    ) -> list[tuple[str, Any, Any]]:
        """The triples matching a pattern; ``None`` matches anything in that position."""
        return [
            t
            for t in self.triples()
            if (predicate is None or t[0] == predicate)
            and (subject is None or t[1] == subject)
            and (obj is None or t[2] == obj)
        ]


_MISSING = object()


def _rebuild_state(cls: type[State], name: str, variables: dict[str, Any]) -> State:
    state = cls.__new__(cls)
    state._cow_parent = None
    state._cow_deleted = None
    state.__dict__.update({"__name__": name, **variables})
    return state


def _variables(state: State) -> dict[str, Any]:
    """The state's variables (without its name), reading through to the parent of an unsealed child."""
    own = state.__dict__
    parent = state._cow_parent
    if parent is None:
        return {name: value for name, value in own.items() if name != "__name__"}
    merged = {name: own.get(name, value) for name, value in _variables(parent).items()}
    merged.update((name, value) for name, value in own.items() if name != "__name__")
    return merged


def cow_child(parent: State) -> State:
    """A child of ``parent`` for an action to modify: immutable bindings shared, containers copied lazily.

    The child must be passed to :func:`seal` before anything but the action sees it.
    """
    child = type(parent).__new__(type(parent))
    child._cow_parent = parent
    child._cow_deleted = None
    own = child.__dict__
    for name, value in parent.__dict__.items():
        if type(value) in _ATOMIC:
            own[name] = value
    return child


def seal(child: State) -> State:
    """Complete a child after its action: share every variable the action did not touch.

    Returns the child, now an ordinary state with the parent's variable order.
    """
    parent = child._cow_parent
    if parent is None:
        return child
    child._cow_parent = None
    own = child.__dict__
    deleted = child._cow_deleted or ()
    child._cow_deleted = None
    merged = {name: own.get(name, value) for name, value in parent.__dict__.items() if name not in deleted}
    merged.update(own)
    child.__dict__ = merged
    return child


def touched_equal(child: State, parent: State) -> bool:
    """Whether a sealed child has exactly the parent's variables (only touched ones are compared)."""
    child_vars = child.__dict__
    parent_vars = parent.__dict__
    if child_vars.keys() != parent_vars.keys():
        return False
    for name, value in child_vars.items():
        if name == "__name__":
            continue
        old = parent_vars[name]
        if value is not old and value != old:
            return False
    return True


class Multigoal:
    """A conjunctive goal: the desired values of some state variables, GTPyhop-compatible.

    ``Multigoal('g', pos={'a': 'b'})`` is achieved in a state where ``state.pos['a'] == 'b'``.
    """

    def __init__(self, multigoal_name: str, **variables: Any) -> None:
        self.__name__ = multigoal_name
        vars(self).update(variables)

    def __str__(self) -> str:
        return f"<Multigoal {self.__name__}>"

    def __repr__(self) -> str:
        return _make_repr(self, "Multigoal")

    def copy(self, new_name: str | None = None) -> Multigoal:
        """A deep copy, named ``new_name`` or ``<name>_copy_<n>``."""
        the_copy = copy.deepcopy(self)
        the_copy.__name__ = new_name or _name_for_copy(self.__name__)
        return the_copy

    def display(self, heading: str | None = None) -> None:
        """Print the multigoal's variables and desired values."""
        _print_object(self, heading)

    def state_vars(self) -> list[str]:
        """The names of the state variables the multigoal constrains."""
        return [name for name in vars(self) if name != "__name__"]

    def goals(self) -> Iterator[tuple[str, Any, Any]]:
        """Each (state variable, argument, desired value) the multigoal asks for."""
        for name, bindings in vars(self).items():
            if name != "__name__":
                for arg, value in bindings.items():
                    yield (name, arg, value)


def unachieved_goals(state: State, multigoal: Multigoal) -> dict[str, dict[Any, Any]]:
    """The part of ``multigoal`` that does not hold in ``state``, as ``{variable: {arg: value}}``."""
    missing: dict[str, dict[Any, Any]] = {}
    for name, wanted in vars(multigoal).items():
        if name == "__name__" or not wanted:
            continue
        bindings = state.__dict__.get(name)
        if type(bindings) is dict and wanted.items() <= bindings.items():
            continue  # the common case, checked in C: every goal on this variable holds
        for arg, value in wanted.items():
            if not unigoal_holds(state, name, arg, value):
                missing.setdefault(name, {})[arg] = value
    return missing


def unigoal_holds(state: State, variable: str, arg: Any, value: Any) -> bool:
    """Whether ``state.variable[arg] == value``.

    Raises:
        DomainError: if the state has no such variable, or it is not a dictionary.
    """
    from aria.apps.engine.errors import DomainError

    bindings = state.__dict__.get(variable, _MISSING)
    if bindings is _MISSING:
        try:
            bindings = getattr(state, variable)
        except AttributeError:
            raise DomainError(
                f"goal ({variable!r}, {arg!r}, {value!r}) is about state variable {variable!r}, which "
                f"state {state.__name__!r} does not have; initialise it (state.{variable} = {{}}) first"
            ) from None
    if not hasattr(bindings, "get"):
        raise DomainError(
            f"goal ({variable!r}, {arg!r}, {value!r}): state variable {variable!r} of state "
            f"{state.__name__!r} is a {type(bindings).__name__}, "
            "not a dictionary keyed by the goal's argument"
        )
    return bindings.get(arg) == value


def _make_repr(obj: Any, class_name: str) -> str:
    body = ", ".join(f"{name}={value}" for name, value in vars(obj).items() if name != "__name__")
    return f"{class_name}('{obj.__name__}', {body})"


def _print_object(obj: Any, heading: str | None = None) -> None:
    if heading is None:
        heading = type(obj).__name__
    title = f"{heading} {obj.__name__}:"
    print(title)
    print("-" * len(title))
    items = _variables(obj).items() if isinstance(obj, State) else vars(obj).items()
    for name, value in items:
        if name != "__name__":
            print(f"  - {name} = {value}")
    print("")
