"""aria_engine against the gtpyhop package on blocks-world problems, with GTPyhop's own blocks_gtn domain.

Both planners run the same domain code: GTPyhop's ``blocks_gtn`` actions and methods, loaded twice
from the installed ``gtpyhop-examples`` package, once with ``gtpyhop`` bound to the gtpyhop package
and once bound to ``aria.apps.engine.gtpyhop``. The problems come from a seeded generator (random
towers to random towers, every block in the goal); both plan them through the same call,
``gtpyhop.find_plan(state, [goal])`` with GTPyhop's default strategy (iterative greedy) and verbose 0.
Every plan is validated by running its actions from the initial state and checking the goal.

    .venv/bin/python -m bench.engine [--sizes 10,20,40,80,160,320] [--problems 3] [--repeat 5] [--peer-cap 20]

Each problem is planned ``--repeat`` times by each planner, interleaved, and the fastest run counts
(the machine's other load only ever adds time). The collector stays on for every run, as it is
by default, and a full collection before each timed run leaves no run paying for an earlier run's
garbage. The ``domain`` column is the time the domain's own
methods and actions take when called in the same order with no planner at all, on a plain object
mutated in place: what any planner running this domain code must spend. ``overhead`` is a planner's
time per plan step beyond it, and ``bound`` is the ratio a planner with no overhead would reach.

The gtpyhop package deep-copies the whole state before every action and appends to the plan by
copying it, so its time per plan step grows with the problem; each of its runs is capped at
``--peer-cap`` seconds (a size where it runs out is reported as such, and later sizes are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.metadata
import importlib.util
import io
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

# The project root instead of bench/ (whose queue.py would shadow the standard library's queue).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from aria.apps.engine import gtpyhop as ours  # noqa: E402


def load_blocks_gtn(gtpyhop: ModuleType, tag: str) -> Any:
    """Declare GTPyhop's blocks_gtn actions and methods into a fresh domain of ``gtpyhop``."""
    folder = Path(
        str(importlib.metadata.distribution("gtpyhop-examples").locate_file("gtpyhop/examples/blocks_gtn"))
    )
    saved = sys.modules.get("gtpyhop")
    sys.modules["gtpyhop"] = gtpyhop
    try:
        domain = gtpyhop.Domain(f"bench_blocks_gtn_{tag}")
        for part in ("actions", "methods"):
            spec = importlib.util.spec_from_file_location(
                f"bench_blocks_gtn_{tag}_{part}", folder / f"{part}.py"
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("gtpyhop", None)
        else:
            sys.modules["gtpyhop"] = saved
    return domain


def towers(blocks: list[str], rng: random.Random) -> dict[str, str]:
    order = blocks[:]
    rng.shuffle(order)
    pos: dict[str, str] = {}
    below = "table"
    for block in order:
        if below == "table" or rng.random() < 0.3:
            below = "table"
        pos[block] = below
        below = block
    return pos


def problem(size: int, rng: random.Random) -> tuple[dict[str, str], dict[str, str]]:
    blocks = [f"b{i}" for i in range(size)]
    return towers(blocks, rng), towers(blocks, rng)


def make(gtpyhop: ModuleType, start: dict[str, str], goal: dict[str, str]) -> tuple[Any, Any]:
    state = gtpyhop.State("start")
    state.pos = dict(start)
    state.clear = {b: b not in start.values() for b in start}
    state.holding = {"hand": False}
    return state, gtpyhop.Multigoal("goal", pos=dict(goal))


def valid(domain: Any, gtpyhop: ModuleType, start: dict[str, str], goal: dict[str, str], plan: Any) -> bool:
    state, _ = make(gtpyhop, start, goal)
    for step in plan:
        state = domain._action_dict[step[0]](copy.deepcopy(state), *step[1:])
        if not state:
            return False
    return all(state.pos[b] == target for b, target in goal.items())


class PlainState:
    """A bare object for the domain-only run: attribute access as cheap as Python gets."""


def domain_only(
    domain: Any, gtpyhop: ModuleType, start: dict[str, str], goal: dict[str, str]
) -> tuple[float, Any]:
    """The domain's own calls, in the planners' order (methods tried in order, actions applied in
    place), without a planner: no copies, no tree, no checks. Returns the time and the plan."""
    state = PlainState()
    state.pos = dict(start)  # type: ignore[attr-defined]
    state.clear = {b: b not in start.values() for b in start}  # type: ignore[attr-defined]
    state.holding = {"hand": False}  # type: ignore[attr-defined]
    multigoal = gtpyhop.Multigoal("goal", pos=dict(goal))
    actions = domain._action_dict
    task_methods = domain._task_method_dict
    multigoal_methods = domain._multigoal_method_list
    todo: list[Any] = [multigoal]
    plan = []
    gc.collect()
    started = time.perf_counter()
    while todo:
        item = todo.pop()
        if isinstance(item, tuple) and item[0] in actions:
            state = actions[item[0]](state, *item[1:])
            plan.append(item)
            continue
        if isinstance(item, tuple):
            methods, arguments = task_methods[item[0]], item[1:]
        else:
            methods, arguments = multigoal_methods, (item,)
        for method in methods:
            subtasks = method(state, *arguments)
            if subtasks is not False and subtasks is not None:
                todo.extend(reversed(subtasks))
                break
    return time.perf_counter() - started, plan


class PeerTimeout(Exception):
    pass


def timed_plan(
    gtpyhop: ModuleType, domain: Any, start: dict[str, str], goal: dict[str, str], cap: float | None
) -> tuple[float, Any]:
    gtpyhop.set_current_domain(domain)
    state, multigoal = make(gtpyhop, start, goal)

    def expire(signum: int, frame: Any) -> None:
        raise PeerTimeout

    if cap is not None:
        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, cap)
    try:
        gc.collect()
        started = time.perf_counter()
        plan = gtpyhop.find_plan(state, [multigoal])
        return time.perf_counter() - started, plan
    finally:
        if cap is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,40,80,160,320")
    parser.add_argument("--problems", type=int, default=3, help="problems per size (seeded)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per problem and planner (fastest counts)")
    parser.add_argument(
        "--peer-cap", type=float, default=20.0, help="seconds per gtpyhop run before giving up"
    )
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import gtpyhop as peer  # the gtpyhop package (its import prints a banner)
    except ImportError:
        print("the gtpyhop package is not installed (pip install '.[dev]'): nothing to compare with")
        return
    if peer is ours:
        raise SystemExit("`gtpyhop` resolves to aria's module; run this without it bound")
    peer.verbose = 0
    with contextlib.redirect_stdout(io.StringIO()):
        peer.set_verbose_level(0)
        peer.set_recursive_planning(False)
        ours.set_verbose_level(0)
        ours.set_recursive_planning(False)
    peer_domain = load_blocks_gtn(peer, "peer")
    our_domain = load_blocks_gtn(ours, "ours")

    print(
        f"blocks_gtn (GTPyhop's own domain code), {args.problems} seeded problems per size "
        f"(seed {args.seed}), fastest of {args.repeat} runs each"
    )
    print(
        f"python {sys.version.split()[0]}, gtpyhop package {peer.__version__}, "
        f"peer capped at {args.peer_cap:g} s a run"
    )
    print("times are means over the problems; us/step = microseconds per plan step (action)")
    print()
    header = (
        f"{'blocks':>6} {'plan len':>8} {'domain s':>9} {'aria s':>8} {'gtpyhop s':>10} {'ratio':>6} "
        f"{'bound':>6} | {'domain':>7} {'aria overhead':>13} {'gtpyhop overhead':>16}  (us/step)"
    )
    print(header)
    print("-" * len(header))
    peer_gave_up = False
    rng = random.Random(args.seed)
    for size in sizes:
        problems = [problem(size, rng) for _ in range(args.problems)]
        floor_times, our_times, peer_times, lengths = [], [], [], []
        peer_note = ""
        for start, goal in problems:
            best_floor = best_ours = best_peer = float("inf")
            plan: Any = None
            for _ in range(args.repeat):
                elapsed, floor_plan = domain_only(our_domain, ours, start, goal)
                best_floor = min(best_floor, elapsed)
                elapsed, plan = timed_plan(ours, our_domain, start, goal, None)
                if plan is False or not valid(our_domain, ours, start, goal, plan):
                    raise SystemExit(f"aria's plan for a {size}-block problem is not valid")
                if list(plan) != floor_plan:
                    raise SystemExit(f"the domain-only run found another plan for a {size}-block problem")
                best_ours = min(best_ours, elapsed)
                if peer_gave_up:
                    continue
                try:
                    elapsed, peer_plan = timed_plan(peer, peer_domain, start, goal, args.peer_cap)
                except PeerTimeout:
                    peer_gave_up = True
                    peer_note = f"over {args.peer_cap:g} s (capped; larger sizes skipped)"
                    continue
                if peer_plan is False or not valid(peer_domain, peer, start, goal, peer_plan):
                    raise SystemExit(f"gtpyhop's plan for a {size}-block problem is not valid")
                if peer_plan != plan:
                    raise SystemExit(f"the two planners found different plans for a {size}-block problem")
                best_peer = min(best_peer, elapsed)
            floor_times.append(best_floor)
            our_times.append(best_ours)
            lengths.append(len(plan))
            if best_peer != float("inf"):
                peer_times.append(best_peer)
        floor_mean = statistics.fmean(floor_times)
        ours_mean = statistics.fmean(our_times)
        steps = statistics.fmean(lengths)
        per_step = 1e6 / steps
        if peer_times and len(peer_times) == len(problems) and not peer_gave_up:
            peer_mean = statistics.fmean(peer_times)
            print(
                f"{size:>6} {steps:>8.0f} {floor_mean:>9.4f} {ours_mean:>8.4f} {peer_mean:>10.4f} "
                f"{peer_mean / ours_mean:>5.1f}x {peer_mean / floor_mean:>5.1f}x | "
                f"{floor_mean * per_step:>7.1f} {(ours_mean - floor_mean) * per_step:>13.1f} "
                f"{(peer_mean - floor_mean) * per_step:>16.1f}",
                flush=True,
            )
        else:
            print(
                f"{size:>6} {steps:>8.0f} {floor_mean:>9.4f} {ours_mean:>8.4f} "
                f"{peer_note or 'skipped (capped at a smaller size)'} | {floor_mean * per_step:>7.1f} "
                f"{(ours_mean - floor_mean) * per_step:>13.1f}",
                flush=True,
            )
    print()
    print(
        "every plan was validated by simulation; both planners and the domain-only run returned the same "
        "plan for every problem run"
    )


if __name__ == "__main__":
    main()
