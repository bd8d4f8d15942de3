"""States and multigoals, GTPyhop-compatible, with cheap copy-on-write children.

A :class:`State` is what GTPyhop users know: an object whose attributes are state variables, usually
dictionaries (``state.pos['a'] = 'table'``). The same bindings read as predicate-subject-object
triples (``('pos', 'a', 'table')``), which is the representation the seed used; :meth:`State.triples`,
:meth:`State.from_triples` and the small triple-store methods (:meth:`State.get`, :meth:`State.put`,
:meth:`State.retract`, :meth:`State.match`) work on any state, so both views plan with one engine.

Why copy-on-write: GTPyhop deep-copies the whole state before every action, which dominates its cost
on large states. The planner instead gives an action a *child* (:func:`cow_child`) that starts with
only the parent's immutable bindings; a container-valued variable (a dict, list, set...) is copied
the first time the action reads it, so an action pays only for the variables it touches.
:func:`seal` then shares the untouched variables with the parent. Sharing is safe because the
planner never mutates a state after sealing it, and :meth:`State.copy` (what users call) always
makes a fully private copy.

Why it is fast: the domain's own methods read state variables far more often than actions write
them, so reading ``state.pos[b]`` must cost what it costs on a plain object. Only the child an
action is running on has the ``__getattr__`` hook that copies lazily (its class is switched back
when it is sealed), because CPython cannot specialise attribute reads on a class that has one. And
a copy must not look inside every value each time (checking that a dictionary's values are all
immutable costs several times the copy itself): the copies the planner makes are :class:`FlatDict`
objects, dictionaries known to hold only immutable values (a write of a mutable value turns one
into a :class:`MixedDict`), so the next copy of one is a single C-level dictionary copy.
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


class FlatDict(dict):  # type: ignore[type-arg]
    """A state variable's private dictionary whose values are all immutable.

    The planner's copies of state variables are FlatDicts when every value is atomic (or a
    tuple/frozenset of atomic values). Writes check the value they store: a mutable one turns the
    dictionary into a :class:`MixedDict` (its class changes), whose next copy looks inside. It
    behaves as a dict in every other way; :meth:`State.copy` and the JSON forms give plain dicts
    back, and it pickles as one.
    """

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        if type(value) not in _ATOMIC and not _all_atomic((value,)):
            self.__class__ = MixedDict
        dict.__setitem__(self, key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if type(default) not in _ATOMIC and not _all_atomic((default,)):
            self.__class__ = MixedDict
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.__class__ = MixedDict  # what comes in is not looked at: the next copy checks
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any) -> Any:
        self.__class__ = MixedDict
        return dict.__ior__(self, other)

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))  # pickles (and deep-copies) as a plain dict

    def copy(self) -> dict[Any, Any]:  # type: ignore[override]
        return dict(self)


class MixedDict(dict):  # type: ignore[type-arg]
    """A FlatDict that was given a mutable value: an ordinary dict whose copies look inside."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def copy(self) -> dict[Any, Any]:  # type: ignore[override]
        return dict(self)


def _flat_copy(value: Any) -> Any:
    """A private copy of a state variable for a copy-on-write child (a FlatDict for a flat dict)."""
    kind = type(value)
    if kind is FlatDict or (kind is dict and _all_atomic(value.values())):
        return FlatDict(value)
    return _copy_tree(value, 0)


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
    if kind is FlatDict:
        return dict(value)
    if kind is dict or kind is MixedDict:
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


class _StateSlots:
    """The planner's bookkeeping on a state, in slots so that it never shows up among the variables.

    A base class of its own so that :class:`State` adds no slots and its instances get the
    interpreter-managed attribute storage every plain object has: their variables are stored as
    inline values, which is what CPython 3.11 reads fastest (``state.pos`` in the domain's code).
    Anything that reads ``state.__dict__`` turns those values into a dictionary for good, which makes
    every later attribute read on that state about a third slower in blocks_gtn's methods; so the
    constructors set variables one by one, and the planner's hot paths read them with ``getattr``.
    """

    __slots__ = ("_cow_deleted", "_cow_parent", "_flat", "_other")


class State(_StateSlots):
    """A state of the world: named state variables, usually dictionaries keyed by an object.

    ``State('s', loc={'alice': 'home'})`` and ``s = State('s'); s.loc = {'alice': 'home'}`` are the
    same. Two states are equal when their variables are (names are ignored). Reading a missing
    variable raises ``AttributeError`` (the planner's error names the state and the variable).
    """

    # In _StateSlots: _cow_parent (the parent of a copy-on-write child), _flat (names of the
    # variables that are plain dicts of immutable values), _other (names of the other container
    # variables; None: not looked at yet).

    def __init__(self, state_name: str, **variables: Any) -> None:
        self._cow_parent = None
        self._cow_deleted = None
        self._flat = self._other = None
        self.__name__ = state_name
        for name, value in variables.items():  # not through vars(): see _StateSlots
            setattr(self, name, value)

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
        the_copy._flat = the_copy._other = None
        # The name first, then the variables in their original order (display and repr follow it);
        # set one by one, not through the copy's __dict__ (see _StateSlots).
        the_copy.__name__ = new_name or _name_for_copy(self.__name__)
        for name, value in _variables(self).items():
            setattr(the_copy, name, private_copy(value))
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
        parent = _parent_of(self)
        if bindings is None and parent is not None and predicate in parent.__dict__:
            bindings = getattr(self, predicate)
        return bindings.get(subject, default) if isinstance(bindings, dict) else default

    def put(self, predicate: str, subject: Any, obj: Any) -> None:
        """Bind (predicate, subject) to ``obj``, creating the predicate's dictionary if needed."""
        parent = _parent_of(self)
        if predicate not in self.__dict__ and not (parent is not None and predicate in parent.__dict__):
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
    state._flat = state._other = None
    state.__name__ = name
    for variable, value in variables.items():
        setattr(state, variable, value)
    return state


def _parent_of(state: State) -> State | None:
    # getattr: a subclass whose __init__ does not call State's leaves the slot unset.
    return getattr(state, "_cow_parent", None)


def _variables(state: State) -> dict[str, Any]:
    """The state's variables (without its name), reading through to the parent of an unsealed child."""
    own = state.__dict__
    parent = _parent_of(state)
    if parent is None:
        return {name: value for name, value in own.items() if name != "__name__"}
    merged = {name: own.get(name, value) for name, value in _variables(parent).items()}
    merged.update((name, value) for name, value in own.items() if name != "__name__")
    return merged


class _CopyOnWrite:
    """What a copy-on-write child adds to its state class while an action runs on it."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Only reached for a variable the child does not hold yet: copy it from the parent.
        parent = self._cow_parent  # type: ignore[attr-defined]
        if parent is not None:
            value = parent.__dict__.get(name, _MISSING)
            if value is not _MISSING:
                copied = FlatDict(value) if name in parent._flat else _flat_copy(value)
                self.__dict__[name] = copied
                return copied
        if name.startswith("__"):
            raise AttributeError(name)
        state_name = self.__dict__.get("__name__", "?")
        raise AttributeError(f"state {state_name!r} has no state variable {name!r}")

    def __delattr__(self, name: str) -> None:
        parent = self._cow_parent  # type: ignore[attr-defined]
        if parent is not None and name in parent.__dict__:
            # Deleting a variable it has not copied: remember it, so seal() does not share it back.
            self._cow_deleted = (self._cow_deleted or frozenset()) | {name}  # type: ignore[attr-defined]
            self.__dict__.pop(name, None)
            return
        object.__delattr__(self, name)


_COW_CLASSES: dict[type, type] = {}


def _cow_class(cls: type[State]) -> type:
    """``cls`` with the copy-on-write hooks: the class of a child while its action runs."""
    found = _COW_CLASSES.get(cls)
    if found is None:
        found = type(
            cls.__name__,
            (_CopyOnWrite, cls),
            {"__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
        _COW_CLASSES[cls] = found
    return found


_EAGER = frozenset({"<all containers copied>"})  # _cow_deleted of a child that copied everything


def _layout(state: State) -> frozenset[str]:
    """The names of ``state``'s flat variables (plain dicts of immutable values); also sets ``_other``."""
    try:
        flat = state._flat
    except AttributeError:  # a subclass whose __init__ does not call State's
        flat = None
    if flat is None:
        flat_names, other = [], []
        for name, value in state.__dict__.items():
            kind = type(value)
            if kind in _ATOMIC:
                continue
            if kind is dict and _all_atomic(value.values()):
                flat_names.append(name)
            else:
                other.append(name)
        state._flat = flat = frozenset(flat_names)
        state._other = frozenset(other)
    return flat


def cow_child(parent: State, copy_now: frozenset[str] = frozenset()) -> State:
    """A child of ``parent`` for an action to modify: immutable bindings shared, containers copied lazily.

    Args:
        parent: The state the action applies to.
        copy_now: Variables to copy at once rather than on first read (the planner passes those the
            same action touched last time: reading through the lazy hook costs more than the copy).
            When they are all the parent's container variables and all are flat, the child is an
            ordinary state holding its own copy of each (no hook, nothing to merge when sealed).

    The child must be passed to :func:`seal` before anything but the action sees it.
    """
    flat = _layout(parent)
    cls = type(parent)
    if copy_now and not parent._other and flat <= copy_now:
        child = object.__new__(cls)
        own = parent.__dict__.copy()
        for name in flat:
            own[name] = FlatDict(own[name])
        child.__dict__ = own
        child._cow_parent = parent
        child._cow_deleted = _EAGER
        return child
    child = object.__new__(_COW_CLASSES.get(cls) or _cow_class(cls))
    child._cow_parent = parent
    child._cow_deleted = None
    own = child.__dict__
    parent_vars = parent.__dict__
    for name, value in parent_vars.items():
        if type(value) in _ATOMIC:
            own[name] = value
    for name in copy_now:
        value = parent_vars.get(name, _MISSING)
        if value is not _MISSING and name not in own:
            own[name] = FlatDict(value) if name in flat else _flat_copy(value)
    return child  # type: ignore[return-value]


def touched_variables(child: State) -> frozenset[str]:
    """The container variables a child holds of its own (those its action read or created)."""
    return frozenset(name for name, value in child.__dict__.items() if type(value) not in _ATOMIC)


def seal(child: State) -> State:
    """Complete a child after its action: share every variable the action did not touch.

    The action's FlatDicts become plain dicts again (the domain's methods read plain dicts faster
    than any subclass), and the state notes which of its variables hold only immutable values.
    Returns the child, now an ordinary state of its parent's class with the parent's variable order.
    """
    parent = _parent_of(child)
    if parent is None:
        return child
    child._cow_parent = None
    own = child.__dict__
    flat_names = []
    other = []
    for name, value in own.items():
        kind = type(value)
        if kind is FlatDict:
            own[name] = dict(value)
            flat_names.append(name)
        elif kind not in _ATOMIC:
            if kind is MixedDict:
                own[name] = dict(value)
            other.append(name)
    if child._cow_deleted is _EAGER:
        child._cow_deleted = None
        if not other and len(flat_names) == len(parent._flat):
            child._flat, child._other = parent._flat, parent._other  # the same variables, still flat
        else:
            child._flat = frozenset(flat_names)
            child._other = frozenset(other)
        return child
    child.__class__ = type(parent)
    touched = own.keys()
    child._flat = (parent._flat - touched).union(flat_names)
    child._other = (parent._other - touched).union(other)
    merged = parent.__dict__.copy()  # the parent's variable order, then what the action added
    deleted = child._cow_deleted
    if deleted:
        child._cow_deleted = None
        for name in deleted:
            merged.pop(name, None)
            child._flat = child._flat - {name}
            child._other = child._other - {name}
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
        # One by one, not through vars(self): methods read a multigoal's variables as often as the
        # state's, and attributes stored inline read fastest (see _StateSlots).
        for name, value in variables.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return f"<Multigoal {self.__name__}>"

    def __repr__(self) -> str:
        return _make_repr(self, "Multigoal")

    def copy(self, new_name: str | None = None) -> Multigoal:
        """A deep copy, named ``new_name`` or ``<name>_copy_<n>``."""
        the_copy = type(self).__new__(type(self))
        the_copy.__name__ = new_name or _name_for_copy(self.__name__)
        memo: dict[int, Any] = {}  # one memo: aliasing between variables is kept, as deepcopy keeps it
        for name, value in vars(self).items():
            if name != "__name__":
                setattr(the_copy, name, copy.deepcopy(value, memo))
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


_DICTS = frozenset({dict, FlatDict, MixedDict})


def unachieved_goals(state: State, multigoal: Multigoal) -> dict[str, dict[Any, Any]]:
    """The part of ``multigoal`` that does not hold in ``state``, as ``{variable: {arg: value}}``."""
    missing: dict[str, dict[Any, Any]] = {}
    for name, wanted in vars(multigoal).items():
        if name == "__name__" or not wanted:
            continue
        bindings = getattr(state, name, None)  # not state.__dict__: see _StateSlots
        if type(bindings) in _DICTS and wanted.items() <= bindings.items():
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
    bindings = getattr(state, variable, None)  # not state.__dict__: see _StateSlots
    if type(bindings) in _DICTS:
        return bindings.get(arg) == value  # type: ignore[no-any-return]
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
