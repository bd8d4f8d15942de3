"""The node: 14 apps in cold-boot order, `import aria`, the root's rest_for_one, the control socket."""

from __future__ import annotations

import gc
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import aria
from aria.application import App, placeholder_children
from aria.apps import all_apps, boot_order
from aria.control import ControlError, request
from aria.errors import NoSuchService, StartError, UsageError
from aria.system import YOUNG_COLLECTION_THRESHOLD, DataDirInUse


def placeholders() -> list[App]:
    """The 14 apps with their real layers, dependencies and config, each running as a placeholder:
    the system's mechanics without starting OpenBao or PostgreSQL."""
    return [replace(app, build=placeholder_children) for app in all_apps()]


BOOT_ORDER = [
    "aria_security",
    "aria_data",
    "aria_auth",
    "aria_storage",
    "aria_queue",
    "aria_engine",
    "aria_shape",
    "aria_interpret",
    "aria_workflow",
    "aria_interface",
    "aria_monitor",
    "aria_debugger",
    "aria_tune",
    "aria_coordinate",
]


class TestBootOrder:
    def test_layers_then_dependencies_order_the_fourteen_apps(self) -> None:
        """Layer 1..5 in turn; within a layer, dependencies first: the engine before shape (which uses
        it), and the gateway after every app whose routes it serves."""
        apps = boot_order(all_apps())
        assert [app.name for app in apps] == BOOT_ORDER
        assert [app.layer for app in apps] == sorted(app.layer for app in apps)
        position = {app.name: index for index, app in enumerate(apps)}
        for app in apps:
            for dependency in app.depends_on:
                assert position[dependency] < position[app.name]

    def test_a_selection_brings_its_dependencies(self) -> None:
        assert [a.name for a in boot_order(all_apps(), ["storage"])] == [
            "aria_security",
            "aria_data",
            "aria_storage",
        ]

    def test_bad_selections_and_dependencies_are_refused(self) -> None:
        with pytest.raises(UsageError, match="unknown app 'nope'"):
            boot_order(all_apps(), ["nope"])
        security, tune = (app for app in all_apps() if app.name in ("aria_security", "aria_tune"))
        inverted = [replace(security, depends_on=("aria_tune",)), tune]
        with pytest.raises(UsageError, match="depends on 'aria_tune', which boots later"):
            boot_order(inverted)

    async def test_a_live_boot_starts_the_apps_in_that_order(self, node_config: dict[str, Any]) -> None:
        async with aria.running(config=node_config, catalog=placeholders()) as system:
            started = [
                e.path for e in system.events.recent() if e.kind == "started" and e.path.count("/") == 1
            ]
            assert started == [f"root/{name}" for name in BOOT_ORDER]
            tree = system.tree()
            assert [child["id"] for child in tree["root"]["children"]] == BOOT_ORDER
            assert all(child["state"] == "running" for child in tree["root"]["children"])
            json.dumps(tree)
        stopped = [e.path for e in system.events.recent() if e.kind == "exited" and e.path.count("/") == 1]
        assert stopped == [f"root/{name}" for name in reversed(BOOT_ORDER)]


class TestScripting:
    async def test_running_some_apps_and_reaching_their_api(self, node_config: dict[str, Any]) -> None:
        async with aria.running(apps=["aria_storage"], config=node_config, catalog=placeholders()) as system:
            assert [app.name for app in system.apps] == ["aria_security", "aria_data", "aria_storage"]
            storage = aria.whereis("aria_storage")
            assert storage.status()["implemented"] is False
            assert "not implemented yet" in storage.status()["note"]
            assert (await storage.health())["ok"] is True
            with pytest.raises(NoSuchService, match="no service named 'aria_tune'"):
                aria.whereis("tune")

    async def test_a_node_tunes_the_collector_and_restores_it(self, node_config: dict[str, Any]) -> None:
        before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
        async with aria.running(apps=["aria_data"], config=node_config, catalog=placeholders()):
            assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
            assert gc.get_freeze_count() > frozen_before  # what boot made is out of the collector's way
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0

    async def test_a_foundation_crash_restarts_what_boots_after_it(self, node_config: dict[str, Any]) -> None:
        """The root is rest_for_one: killing aria_data restarts it and every later app, not aria_security."""
        async with aria.running(
            apps=["aria_queue", "aria_auth"], config=node_config, catalog=placeholders()
        ) as system:
            await system.kill_child("aria_data")
            await trio.testing.wait_all_tasks_blocked()
            restarts = {child["id"]: child["restarts"] for child in system.tree()["root"]["children"]}
            assert restarts == {"aria_security": 0, "aria_data": 1, "aria_auth": 1, "aria_queue": 1}
            assert await aria.whereis("aria_queue").health()

    async def test_apps_reach_only_their_dependencies(self, node_config: dict[str, Any]) -> None:
        from aria.application import AppContext

        async with aria.running(apps=["aria_storage"], config=node_config, catalog=placeholders()) as system:
            storage_app = next(app for app in system.apps if app.name == "aria_storage")
            context = AppContext(storage_app, system)
            assert context.api("aria_security").service_name == "aria_security"  # through aria_data
            with pytest.raises(UsageError, match="'aria_storage' may not call 'aria_auth'"):
                context.api("aria_auth")

    async def test_boot_failure_names_the_app_and_cause(self, node_config: dict[str, Any]) -> None:
        def broken_build(context: Any) -> list[Any]:
            raise PermissionError(f"cannot write {context.data_dir}")

        catalog = [
            replace(app, build=broken_build) if app.name == "aria_data" else app for app in placeholders()
        ]
        with pytest.raises(
            StartError, match="child 'root/aria_data' failed to start: PermissionError: cannot write"
        ):
            async with aria.running(apps=["aria_data"], config=node_config, catalog=catalog):
                pass


class TestControlSocket:
    async def test_status_and_stop_over_the_socket(self, node_config: dict[str, Any], data_dir: Path) -> None:
        async with aria.running(apps=["aria_security"], config=node_config, catalog=placeholders()) as system:
            socket_path = data_dir / "aria.sock"
            answer = await trio.to_thread.run_sync(request, socket_path, "status")
            assert answer["tree"]["root"]["children"][0]["id"] == "aria_security"
            with pytest.raises(ControlError, match="unknown control op 'dance'"):
                await trio.to_thread.run_sync(request, socket_path, "dance")
            await trio.to_thread.run_sync(request, socket_path, "stop")
            with trio.fail_after(10):
                await system.wait_stopped()
        assert not socket_path.exists()

    async def test_two_nodes_cannot_share_a_data_dir(self, node_config: dict[str, Any]) -> None:
        async with aria.running(apps=["aria_security"], config=node_config, catalog=placeholders()):
            with pytest.raises(DataDirInUse, match="already running on data directory"):
                async with aria.running(apps=["aria_security"], config=node_config, catalog=placeholders()):
                    pass

    def test_no_node_means_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(ControlError, match="aria is not running"):
            request(tmp_path / "aria.sock", "status")
