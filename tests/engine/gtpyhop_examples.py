"""Running the examples bundled with the installed ``gtpyhop`` package against our drop-in module.

Nothing is copied from the package: the examples are found where pip installed them and imported
with ``sys.modules["gtpyhop"]`` bound to :mod:`aria.apps.engine.gtpyhop`.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from aria.apps.engine import gtpyhop as ours


def examples_dir() -> Path | None:
    """Where the ``gtpyhop-examples`` distribution put ``gtpyhop/examples``, or None if it is absent."""
    try:
        distribution = importlib.metadata.distribution("gtpyhop-examples")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file("gtpyhop/examples")))
    return path if path.is_dir() else None


EXAMPLES = examples_dir()
SKIP_REASON = "the gtpyhop package (2.x, with its examples) is not installed: pip install '.[dev]'"

_SETTINGS = (
    "current_domain",
    "verbose",
    "_strategy",
    "_verify_goals",
    "_drop_idempotent_actions",
    "_lazy_methods",
)


@contextlib.contextmanager
def bound_as_gtpyhop(*extra_paths: Path) -> Iterator[ModuleType]:
    """Bind our module as ``gtpyhop`` (with the installed examples as ``gtpyhop.examples``).

    Restores afterwards everything it touched: ``sys.modules`` entries for ``gtpyhop*`` and the
    modules the examples imported, ``sys.path``, and our module's settings and domain list.
    """
    assert EXAMPLES is not None
    saved_modules = dict(sys.modules)
    saved_path = list(sys.path)
    saved_settings = {name: getattr(ours, name) for name in _SETTINGS}
    saved_domains = list(ours._domains)
    saved_attributes = set(vars(ours))
    spec = importlib.machinery.ModuleSpec("gtpyhop.examples", None, is_package=True)
    spec.submodule_search_locations = [str(EXAMPLES)]
    try:
        with ours.installed_as_gtpyhop():
            sys.modules["gtpyhop.examples"] = importlib.util.module_from_spec(spec)
            sys.path[:0] = [str(path) for path in extra_paths]
            yield ours
    finally:
        for name in list(sys.modules):
            if name not in saved_modules:
                del sys.modules[name]
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path
        for name, value in saved_settings.items():
            setattr(ours, name, value)
        ours._domains[:] = saved_domains
        for name in set(vars(ours)) - saved_attributes:  # e.g. `examples`, set by the import system
            delattr(ours, name)


def module_name_for(path: Path) -> tuple[str, Path | None]:
    """How to import an example file: its dotted name under ``gtpyhop.examples``, or (for the
    collections in folders with a hyphen, which their own scripts load by putting the folder on
    ``sys.path``) the name relative to that folder and the folder to add."""
    assert EXAMPLES is not None
    parts = path.relative_to(EXAMPLES).with_suffix("").parts
    for index, part in enumerate(parts):
        if "-" in part:
            return ".".join(parts[index + 1 :]), EXAMPLES.joinpath(*parts[: index + 1])
    return "gtpyhop.examples." + ".".join(parts), None


def doctest_files() -> list[Path]:
    """Every example file with doctests (the collections keep their regression tests there)."""
    if EXAMPLES is None:
        return []
    finder = doctest.DocTestParser()
    found = []
    for path in sorted(EXAMPLES.rglob("*.py")):
        if "audit" in path.parts:
            continue  # a style checker for the examples' docs, not an example
        text = path.read_text(encoding="utf-8")
        if ">>>" in text and any(
            finder.get_examples(block) for block in text.split('"""')[1::2] if ">>>" in block
        ):
            found.append(path)
    return found


def run_doctests(path: Path) -> tuple[doctest.TestResults, str]:
    """Import ``path`` (with our module bound) and run its doctests; (results, report of failures)."""
    name, folder = module_name_for(path)
    extra = [folder] if folder is not None else []
    report = io.StringIO()
    with bound_as_gtpyhop(*extra), contextlib.redirect_stdout(io.StringIO()):
        module = importlib.import_module(name)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        for test in doctest.DocTestFinder().find(module, name):
            runner.run(test, out=report.write)
        results = runner.summarize(verbose=False)
    return results, report.getvalue()


def problem_packages() -> list[Path]:
    """Example packages that offer ``get_problems()`` (their planning problems)."""
    if EXAMPLES is None:
        return []
    return sorted(
        init.parent
        for init in EXAMPLES.rglob("__init__.py")
        if "def get_problems" in init.read_text(encoding="utf-8") and "audit" not in init.parts
    )


def load_problem_package(package_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Import a problem package the way its benchmarking script does (its parent folder on sys.path)."""
    module = importlib.import_module(package_dir.name)
    return module, module.get_problems()
