"""House rules that keep the architecture honest: app boundaries, public surfaces, app shape."""

from __future__ import annotations

import ast
from pathlib import Path

import aria.supervisor
from aria.apps import APP_PACKAGES, all_apps, dependency_closure

ROOT = Path(aria.__file__).resolve().parent
APPS = ROOT / "apps"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


class TestAppBoundaries:
    def test_apps_use_each_other_only_through_api_and_only_dependencies(self) -> None:
        """An app may import another app's `api` module only, and only of an app it depends on."""
        apps = all_apps()
        problems = []
        for package in APP_PACKAGES:
            allowed = {name.removeprefix("aria_") for name in dependency_closure(apps, f"aria_{package}")}
            for path in (APPS / package).rglob("*.py"):
                for module in imported_modules(path):
                    parts = module.split(".")
                    if parts[:2] != ["aria", "apps"] or len(parts) < 3 or parts[2] == package:
                        continue
                    other = parts[2]
                    if other not in APP_PACKAGES:
                        continue
                    if other not in allowed:
                        problems.append(f"{path.relative_to(ROOT)} imports {module}: not a dependency")
                    elif len(parts) > 3 and parts[3] != "api":
                        problems.append(f"{path.relative_to(ROOT)} imports {module}: only api.py is public")
        assert problems == []

    def test_shared_machinery_does_not_import_apps(self) -> None:
        """aria/supervisor knows nothing of the apps built on it."""
        for path in (ROOT / "supervisor").rglob("*.py"):
            assert not any(m.startswith("aria.apps") for m in imported_modules(path)), path

    def test_every_app_has_the_standard_shape(self) -> None:
        for package in APP_PACKAGES:
            for name in ("__init__.py", "app.py", "api.py", "README.md"):
                assert (APPS / package / name).exists(), f"aria/apps/{package}/{name} is missing"


class TestPublicSurface:
    def test_supervisor_exports_are_pinned(self) -> None:
        assert sorted(aria.supervisor.__all__) == sorted(
            [
                "BRUTAL_KILL",
                "INFINITY",
                "AutoShutdown",
                "ChildContext",
                "ChildCounts",
                "ChildInfo",
                "ChildKilled",
                "ChildSpec",
                "ChildState",
                "ChildType",
                "DynamicSupervisor",
                "EventBus",
                "ExitReason",
                "HttpProbe",
                "LogLineProbe",
                "OSProcess",
                "Probe",
                "ProcessLauncher",
                "ProcessSpec",
                "Registry",
                "Restart",
                "ServiceRef",
                "Strategy",
                "Supervisor",
                "SupervisorEvent",
                "TcpProbe",
                "UnixSocketProbe",
                "current_child",
                "current_launcher",
                "open_process_launcher",
                "process_child",
                "run_command",
                "shield_until_killed",
                "shutdown_grace",
            ]
        )
        for name in aria.supervisor.__all__:
            assert hasattr(aria.supervisor, name)

    def test_aria_exports_are_pinned(self) -> None:
        assert sorted(aria.__all__) == [
            "System",
            "__version__",
            "current_system",
            "running",
            "tree",
            "whereis",
        ]
