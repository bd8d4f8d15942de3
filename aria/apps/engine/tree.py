"""The solution tree: how each task, goal and multigoal was refined, down to the actions.

Like IPyHOP's solution tree, every todo item becomes a :class:`Node` that records its kind, the method
chosen for it and its children; goal refinements end with a verification node. The tree comes back
with every plan, exports to JSON (:meth:`SolutionTree.to_json`) and to a Mermaid flowchart
(:meth:`SolutionTree.to_mermaid`), and is what :meth:`aria.apps.engine.planner.Planner.replan` repairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

ROOT = "root"
ACTION = "action"
TASK = "task"
UNIGOAL = "unigoal"
MULTIGOAL = "multigoal"
VERIFY_GOAL = "verify_goal"
VERIFY_MULTIGOAL = "verify_multigoal"

# Node statuses
OPEN = "open"  # not (yet) expanded by the search
PLANNED = "planned"  # an action in the plan
DROPPED = "dropped"  # an action left out of the plan because it changed nothing (GTPyhop mode)
REFINED = "refined"  # a task or goal refined by `method`
ACHIEVED = "achieved"  # a goal that already held, so nothing was done for it
VERIFIED = "verified"  # a verification node whose check passed
EXECUTED = "executed"  # an action reported executed by replan()
FAILED = "failed"  # the action whose failure replan() repaired


class Node:
    """One item of the solution tree.

    Attributes:
        id: Unique within its tree.
        kind: ``root``, ``action``, ``task``, ``unigoal``, ``multigoal``, ``verify_goal`` or
            ``verify_multigoal`` (None while the search has not reached it).
        item: The todo item (a tuple, or a Multigoal); for a verification node, the goal it checks.
        parent: The node it was refined from (None for the root).
        children: Its refinement, in order (an empty tuple until it is refined).
        method: The name of the method chosen for a task or goal (for a verification node, the
            method whose work it checks).
        status: One of ``open``, ``planned``, ``dropped``, ``refined``, ``achieved``, ``verified``,
            ``executed``, ``failed``.
        depth: Distance from the root.
        superseded: Earlier versions of this node that :meth:`Planner.replan` replaced (their
            executed children stay recorded there); an empty tuple when there are none.
    """

    __slots__ = ("children", "depth", "id", "item", "kind", "method", "parent", "status", "superseded")

    def __init__(
        self, node_id: int, item: Any, parent: Node | None, kind: str | None = None, depth: int | None = None
    ) -> None:
        self.id = node_id
        self.item = item
        self.parent = parent
        self.kind = kind
        # Shared empty tuples until there is something to hold: the planner creates a node for every
        # todo item, and most never get children or superseded versions.
        self.children: list[Node] | tuple[()] = ()
        self.method: str | None = None
        self.status = OPEN
        self.depth = (0 if parent is None else parent.depth + 1) if depth is None else depth
        self.superseded: list[Node] | tuple[()] = ()

    def __repr__(self) -> str:
        return f"<Node {self.id} {self.kind or '?'} {label(self)} {self.status}>"

    def ancestors(self) -> Iterator[Node]:
        """Parent, grandparent, ... up to and including the root."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def path(self) -> list[str]:
        """Labels from the root's first level down to this node."""
        labels = [label(n) for n in reversed(list(self.ancestors())) if n.kind != ROOT]
        return [*labels, label(self)]


def label(node: Node) -> str:
    """A short human-readable label for a node's item."""
    item = node.item
    if node.kind == ROOT:
        return "root"
    if node.kind == VERIFY_GOAL:
        return f"verify {item!r} ({node.method})"
    if node.kind == VERIFY_MULTIGOAL:
        return f"verify {getattr(item, '__name__', item)} ({node.method})"
    if type(item).__name__ == "Multigoal":
        return f"<Multigoal {item.__name__}>"
    if isinstance(item, tuple | list):
        return "(" + ", ".join(repr(x) for x in item) + ("," if len(item) == 1 else "") + ")"
    return repr(item)


class SolutionTree:
    """A root node whose children are the top-level todo items, and the id counter of the tree.

    The planner's fast search does not build a node per todo item while it searches: it records each
    refinement and action in a compact log and hands the tree a builder (:meth:`defer`) that turns
    the log into nodes. The builder runs the first time anything reads the tree (its ``root``), so a
    caller that only wants the plan (GTPyhop's ``find_plan``) never pays for the nodes.
    """

    def __init__(self) -> None:
        self._ids = itertools.count()
        #: A fresh node id (the planner builds nodes itself on its hot path).
        self.new_id = self._ids.__next__
        self._root = Node(self.new_id(), None, None, ROOT)
        self._root.status = REFINED
        self._pending: list[Callable[[], None]] = []

    @property
    def root(self) -> Node:
        """The root node (every node recorded so far is built before it is returned)."""
        if self._pending:
            self.complete()
        return self._root

    def defer(self, build: Callable[[], None]) -> None:
        """Register ``build`` to add recorded nodes to the tree before it is next read."""
        self._pending.append(build)

    def complete(self) -> None:
        """Build the nodes recorded but not built yet (what reading ``root`` does first)."""
        while self._pending:
            self._pending.pop(0)()

    def new_node(self, item: Any, parent: Node, kind: str | None = None) -> Node:
        return Node(self.new_id(), item, parent, kind)

    def nodes(self) -> Iterator[Node]:
        """Every node of the current tree, depth-first in plan order (superseded versions excluded)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def node(self, node_id: int) -> Node:
        """The node with that id.

        Raises:
            KeyError: if the tree has no such node.
        """
        for node in self.nodes():
            if node.id == node_id:
                return node
        raise KeyError(f"the solution tree has no node {node_id}")

    def action_nodes(self) -> list[Node]:
        """The plan's action nodes in order (planned, executed or failed; dropped ones excluded)."""
        return [n for n in self.nodes() if n.kind == ACTION and n.status in (PLANNED, EXECUTED, FAILED)]

    def to_json(self) -> dict[str, Any]:
        """``{"root": id, "nodes": [...]}``: every node (depth-first, plan order) with its ``id``,
        ``kind``, ``status``, ``parent`` id, ``item`` (in the engine's JSON form), ``method`` and
        ``children`` ids, and the ids of the versions it ``superseded`` after a replan."""
        return _encode_iteratively(self.root)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart (``flowchart TD``) of the current tree, one box per node."""
        lines = ["flowchart TD"]
        shapes = {
            ROOT: ("((", "))"),
            ACTION: ("[", "]"),
            TASK: ("(", ")"),
            UNIGOAL: ("{{", "}}"),
            MULTIGOAL: ("{{", "}}"),
            VERIFY_GOAL: ("[/", "/]"),
            VERIFY_MULTIGOAL: ("[/", "/]"),
        }
        for node in self.nodes():
            opening, closing = shapes.get(node.kind or "", ("[", "]"))
            text = label(node) if node.kind != ROOT else "root"
            if node.method and node.kind in (TASK, UNIGOAL, MULTIGOAL):
                text += f" via {node.method}"
            if node.status not in (OPEN, REFINED, PLANNED):
                text += f" [{node.status}]"
            lines.append(f'    n{node.id}{opening}"{_mermaid_escape(text)}"{closing}')
            if node.parent is not None:
                lines.append(f"    n{node.parent.id} --> n{node.id}")
        return "\n".join(lines) + "\n"


def _mermaid_escape(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _encode_iteratively(root: Node) -> dict[str, Any]:
    """A flat node list (children by id), so that trees thousands of levels deep stay valid JSON for
    parsers with nesting limits (Python's own json module among them)."""
    from aria.apps.engine.serialize import item_to_json

    nodes: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        entry: dict[str, Any] = {
            "id": node.id,
            "kind": node.kind,
            "status": node.status,
            "parent": node.parent.id if node.parent is not None else None,
        }
        if node.kind != ROOT:
            entry["item"] = item_to_json(node.item)
        if node.method is not None:
            entry["method"] = node.method
        entry["children"] = [child.id for child in node.children]
        if node.superseded:
            entry["superseded"] = [old.id for old in node.superseded]
        nodes.append(entry)
        stack.extend(reversed(node.superseded))
        stack.extend(reversed(node.children))
    return {"root": root.id, "nodes": nodes}
