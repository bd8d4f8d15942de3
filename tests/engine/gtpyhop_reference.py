"""Plans for the bundled problems of the installed ``gtpyhop`` package (run as a subprocess).

Usage: ``python gtpyhop_reference.py [--ours] TIMEOUT_MS PACKAGE_DIR...``;
prints JSON
``{package_dir: {problem: [success, repr(plan)] or null when planning ran out of time}}``.
Without ``--ours`` the gtpyhop package plans; with it, our module bound as ``gtpyhop`` does (in
GTPyhop 2.x's eliding mode), only the problems that the package's output, read from stdin, planned.
Both run as processes of their own, so that the two never meet in
``sys.modules`` and so that the caller can fix ``PYTHONHASHSEED``: several example domains iterate
over sets of strings, whose order (and so the plan found) depends on the hash seed.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import sys


def main() -> None:
    arguments = sys.argv[1:]
    ours = arguments[0] == "--ours"
    if ours:
        from aria.apps.engine import gtpyhop as our_module

        arguments.pop(0)
        wanted = json.load(sys.stdin)
        our_module.set_drop_idempotent_actions(True)
        sys.modules["gtpyhop"] = our_module
    else:
        wanted = None
    timeout_ms = int(arguments[0])
    with contextlib.redirect_stdout(io.StringIO()):
        import gtpyhop
    results: dict[str, dict[str, list[object] | None]] = {}
    for package_dir in arguments[1:]:
        parent, _, name = package_dir.rpartition("/")
        sys.path.insert(0, parent)
        with contextlib.redirect_stdout(io.StringIO()):
            package = importlib.import_module(name)
            problems = package.get_problems()
            found: dict[str, list[object] | None] = {}
            for key, problem in problems.items():
                if wanted is not None and wanted[package_dir][key] is None:
                    continue
                with gtpyhop.PlannerSession(domain=package.the_domain, verbose=0) as session:
                    result = session.find_plan(copy.deepcopy(problem[0]), problem[1], timeout_ms=timeout_ms)
                timed_out = not result.success and "timeout" in (result.error or "").lower()
                found[key] = None if timed_out else [result.success, repr(result.plan)]
        results[package_dir] = found
        sys.path.remove(parent)
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
