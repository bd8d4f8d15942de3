"""Planning domains: actions, commands, task methods, unigoal methods and multigoal methods.

The attribute names (``_action_dict``, ``_task_method_dict``...) are GTPyhop's, because user code and
GTPyhop's examples reach into them; the methods below are the engine's own, checked declaration API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aria.apps.engine.errors import DomainError

Action = Callable[..., Any]
Method = Callable[..., Any]

# Task names GTPyhop reserves for goal verification; the engine handles verification itself but keeps
# the entries so that domain listings look as GTPyhop users expect.
VERIFY_GOAL = "_verify_g"
VERIFY_MULTIGOAL = "_verify_mg"


class Domain:
    """The knowledge of one planning domain.

    Args:
        domain_name: Its name (what :func:`aria.apps.engine.api` and the service register it under).
    """

    def __init__(self, domain_name: str) -> None:
        if not isinstance(domain_name, str):
            raise TypeError(f"a domain name must be a string, not {domain_name!r}")
        self.__name__ = domain_name
        self._action_dict: dict[str, Action] = {}
        self._command_dict: dict[str, Action] = {}
        self._task_method_dict: dict[str, list[Method]] = {VERIFY_GOAL: [], VERIFY_MULTIGOAL: []}
        self._unigoal_method_dict: dict[str, list[Method]] = {}
        self._multigoal_method_list: list[Method] = []

    def __str__(self) -> str:
        return f"<Domain {self.__name__}>"

    def __repr__(self) -> str:
        return (
            f"<Domain {self.__name__}: {len(self._action_dict)} actions, "
            f"{len(self._task_method_dict) - 2} tasks, {len(self._unigoal_method_dict)} goal variables>"
        )

    @property
    def name(self) -> str:
        return self.__name__

    # ----------------------------------------------------------------------------------------------
    # Declarations (each returns the table it changed, as GTPyhop's do)

    def declare_actions(self, *actions: Action) -> dict[str, Action]:
        """Declare functions as actions, under their ``__name__``."""
        for action in actions:
            _require_callable(action, "action", self)
        self._action_dict.update({action.__name__: action for action in actions})
        return self._action_dict

    def declare_commands(self, *commands: Action) -> dict[str, Action]:
        """Declare functions as commands (``c_<action>``), used instead of the action when acting."""
        for command in commands:
            _require_callable(command, "command", self)
        self._command_dict.update({command.__name__: command for command in commands})
        return self._command_dict

    def declare_task_methods(self, task_name: str, *methods: Method) -> dict[str, list[Method]]:
        """Add methods for ``task_name``, tried in declaration order; a repeated method is ignored."""
        if not isinstance(task_name, str):
            raise TypeError(f"domain {self.__name__!r}: a task name must be a string, not {task_name!r}")
        for method in methods:
            _require_callable(method, f"method for task {task_name!r}", self)
        known = self._task_method_dict.setdefault(task_name, [])
        known.extend(m for m in _unique(methods) if m not in known)
        return self._task_method_dict

    def declare_unigoal_methods(self, state_var_name: str, *methods: Method) -> dict[str, list[Method]]:
        """Add methods for goals ``(state_var_name, arg, value)``."""
        if not isinstance(state_var_name, str):
            raise TypeError(
                f"domain {self.__name__!r}: a goal's state-variable name must be a string, "
                f"not {state_var_name!r}"
            )
        for method in methods:
            _require_callable(method, f"method for goals on {state_var_name!r}", self)
        known = self._unigoal_method_dict.setdefault(state_var_name, [])
        known.extend(m for m in _unique(methods) if m not in known)
        return self._unigoal_method_dict

    def declare_multigoal_methods(self, *methods: Method) -> list[Method]:
        """Add methods for multigoals."""
        for method in methods:
            _require_callable(method, "multigoal method", self)
        self._multigoal_method_list.extend(
            m for m in _unique(methods) if m not in self._multigoal_method_list
        )
        return self._multigoal_method_list

    # ----------------------------------------------------------------------------------------------

    def copy(self, new_name: str | None = None) -> Domain:
        """A domain with the same knowledge (the tables are copied; the functions are shared)."""
        other = type(self).__new__(type(self))
        other.__name__ = new_name or f"{self.__name__}_copy"
        other._action_dict = dict(self._action_dict)
        other._command_dict = dict(self._command_dict)
        other._task_method_dict = {k: list(v) for k, v in self._task_method_dict.items()}
        other._unigoal_method_dict = {k: list(v) for k, v in self._unigoal_method_dict.items()}
        other._multigoal_method_list = list(self._multigoal_method_list)
        return other

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: actions, commands, tasks with their methods, goal variables."""
        return {
            "name": self.__name__,
            "actions": sorted(self._action_dict),
            "commands": sorted(self._command_dict),
            "tasks": {
                task: [m.__name__ for m in methods]
                for task, methods in self._task_method_dict.items()
                if task not in (VERIFY_GOAL, VERIFY_MULTIGOAL)
            },
            "unigoals": {
                var: [m.__name__ for m in methods] for var, methods in self._unigoal_method_dict.items()
            },
            "multigoal_methods": [m.__name__ for m in self._multigoal_method_list],
        }

    def display(self) -> None:
        """Print the domain's actions, commands and methods, as GTPyhop's ``print_domain`` does."""
        print_domain(self)


def _unique(items: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _require_callable(obj: Any, what: str, domain: Domain) -> None:
    if not callable(obj) or not hasattr(obj, "__name__"):
        raise DomainError(f"domain {domain.__name__!r}: {what} {obj!r} is not a named function")


def print_domain(domain: Domain) -> None:
    """Print a domain the way GTPyhop does."""
    print(f"\nDomain name: {domain.__name__}")
    if domain._action_dict:
        print("-- Actions:", ", ".join(domain._action_dict))
    else:
        print("-- There are no actions --")
    if domain._command_dict:
        print("-- Commands:", ", ".join(domain._command_dict))
    else:
        print("-- There are no commands --")
    print_methods(domain)


def print_methods(domain: Domain) -> None:
    """Print the task, unigoal and multigoal method tables the way GTPyhop does."""
    if domain._task_method_dict:
        print("")
        print("Task name:         Relevant task methods:")
        print("---------------    ----------------------")
        for task, methods in domain._task_method_dict.items():
            print(f"{task:<19}" + ", ".join(m.__name__ for m in methods))
        print("")
    else:
        print("-- There are no task methods --")
    if domain._unigoal_method_dict:
        print("State var name:    Relevant unigoal methods:")
        print("---------------    -------------------------")
        for var, methods in domain._unigoal_method_dict.items():
            print(f"{var:<19}" + ", ".join(m.__name__ for m in methods))
        print("")
    else:
        print("-- There are no unigoal methods --")
    if domain._multigoal_method_list:
        print("-- Multigoal methods:", ", ".join(m.__name__ for m in domain._multigoal_method_list))
    else:
        print("-- There are no multigoal methods --")
