"""The dynamic supervisor, the registry of names, the event stream and the snapshot."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from aria.errors import NameAlreadyRegistered, NoSuchService, ServiceUnavailable, StartError, UsageError
from aria.supervisor import ChildSpec, ChildState, DynamicSupervisor, Registry, ServiceRef, Supervisor
from tests.supervisor.helpers import Journal, Worker


class Job:
    """A dynamic child: its argument is its name; it finishes or crashes on demand."""

    def __init__(self) -> None:
        self.handles: dict[str, Worker] = {}
        self.journal = Journal()

    async def run(self, name: str, *, task_status: Any) -> None:
        worker = self.handles.setdefault(name, Worker(name, self.journal))
        await worker.run(task_status=task_status)


class TestDynamicSupervisor:
    async def test_start_children_from_a_template(self, nursery: trio.Nursery) -> None:
        job = Job()
        dynamic = DynamicSupervisor(template=ChildSpec("job", job.run, restart="transient"), intensity=5)
        await nursery.start(dynamic.run)
        first = await dynamic.start_child("x")
        second = await dynamic.start_child("y")
        assert (first, second) == (job.handles["x"], job.handles["y"])
        assert [info.id for info in dynamic.which_children()] == ["job-1", "job-2"]
        assert dynamic.count_children().active == 2

    async def test_crashed_children_restart_and_finished_ones_are_forgotten(
        self, nursery: trio.Nursery
    ) -> None:
        job = Job()
        dynamic = DynamicSupervisor(template=ChildSpec("job", job.run, restart="transient"), intensity=5)
        await nursery.start(dynamic.run)
        await dynamic.start_child("x")
        await dynamic.start_child("y")
        job.handles["x"].crash()
        job.handles["y"].finish()
        await trio.testing.wait_all_tasks_blocked()
        assert job.handles["x"].incarnations == 2
        assert [info.id for info in dynamic.which_children()] == ["job-1"]

    async def test_terminate_child_removes_it(self, nursery: trio.Nursery) -> None:
        job = Job()
        dynamic = DynamicSupervisor(template=ChildSpec("job", job.run))
        await nursery.start(dynamic.run)
        await dynamic.start_child("x")
        await dynamic.terminate_child("job-1")
        assert dynamic.which_children() == []
        assert job.journal == [("start", "x"), ("stop", "x")]

    async def test_max_children_and_specs_without_template(self, nursery: trio.Nursery) -> None:
        journal = Journal()
        dynamic = DynamicSupervisor(max_children=1, id="dyn")
        await nursery.start(dynamic.run)
        await dynamic.start_child(Worker("one", journal).spec())
        with pytest.raises(UsageError, match="already has max_children=1"):
            await dynamic.start_child(Worker("two", journal).spec())
        with pytest.raises(UsageError, match="has no template; pass a ChildSpec"):
            await dynamic.start_child("arg")

    async def test_children_stop_in_reverse_order(self) -> None:
        job = Job()
        dynamic = DynamicSupervisor(template=ChildSpec("job", job.run))
        async with trio.open_nursery() as nursery:
            await nursery.start(dynamic.run)
            for name in ("x", "y", "z"):
                await dynamic.start_child(name)
            await dynamic.stop()
        assert job.journal.of("stop") == ["z", "y", "x"]

    async def test_start_failure_is_raised_to_the_caller(self, nursery: trio.Nursery) -> None:
        async def broken(reason: str, *, task_status: Any) -> None:
            raise ValueError(reason)

        dynamic = DynamicSupervisor(template=ChildSpec("job", broken), id="dyn")
        await nursery.start(dynamic.run)
        with pytest.raises(StartError, match="'dyn/job-1' failed to start: ValueError: bad args"):
            await dynamic.start_child("bad args")
        assert dynamic.which_children() == []


class TestRegistry:
    async def test_named_children_are_found_and_survive_restarts(self, nursery: trio.Nursery) -> None:
        journal = Journal()
        worker = Worker("w", journal)
        supervisor = Supervisor([worker.spec(name="svc")], intensity=5)
        await nursery.start(supervisor.run)
        assert supervisor.registry.whereis_nowait("svc") is worker
        worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.registry.whereis_nowait("svc") is worker
        assert worker.incarnations == 2

    async def test_calls_wait_for_a_restarting_service(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A call made while the service restarts (3 s of init) waits and reaches the new one."""
        incarnation = 0
        crash = trio.Event()

        class Api:
            def __init__(self, number: int) -> None:
                self.number = number

            async def which(self) -> int:
                return self.number

        async def service(*, task_status: Any) -> None:
            nonlocal incarnation, crash
            incarnation += 1
            if incarnation > 1:
                await trio.sleep(3)  # a slow init (virtual time, autojump_clock)
            crash = trio.Event()
            task_status.started(Api(incarnation))
            await crash.wait()
            raise RuntimeError("crash")

        supervisor = Supervisor([ChildSpec("svc", service, name="svc")], intensity=5)
        await nursery.start(supervisor.run)
        ref = ServiceRef(supervisor.registry, "svc", timeout=10)
        assert await ref.which() == 1
        crash.set()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.registry.whereis_nowait("svc") is None
        began = trio.current_time()
        assert await ref.which() == 2
        assert trio.current_time() - began == pytest.approx(3.0)

    async def test_waiting_gives_up_with_a_clear_error(self, autojump_clock: trio.testing.MockClock) -> None:
        registry = Registry()
        registry.declare("aria_data")
        ref = ServiceRef(registry, "aria_data", timeout=2)
        with pytest.raises(ServiceUnavailable, match=r"'aria_data' is not running \(waited 2 s for it\)"):
            await ref.fetch("select 1")
        with pytest.raises(NoSuchService, match="no service named 'aria_dat'"):
            await registry.wait_for("aria_dat")

    async def test_a_name_cannot_be_bound_twice(self) -> None:
        journal = Journal()
        supervisor = Supervisor(
            [Worker("a", journal).spec(name="x"), Worker("b", journal).spec(name="x")], id="s"
        )
        with pytest.raises(StartError, match="'s/b' failed to start: NameAlreadyRegistered: the name 'x'"):
            await supervisor.run()
        registry = Registry()
        registry.register("n", object())
        with pytest.raises(NameAlreadyRegistered):
            registry.register("n", object())


class TestIntrospection:
    async def test_snapshot_is_json_and_describes_every_child(self, nursery: trio.Nursery) -> None:
        journal = Journal()
        inner = Supervisor([Worker("leaf", journal).spec()], id="inner")
        root = Supervisor(
            [Worker("w", journal).spec(), inner.child_spec()], id="root", strategy="rest_for_one"
        )
        await nursery.start(root.run)
        snapshot = json.loads(json.dumps(root.snapshot()))
        assert snapshot["strategy"] == "rest_for_one"
        worker, nested = snapshot["children"]
        assert (worker["path"], worker["state"], worker["kind"], worker["restarts"]) == (
            "root/w",
            "running",
            "worker",
            0,
        )
        assert nested["children"][0]["path"] == "root/inner/leaf"
        assert nested["strategy"] == "one_for_one"
        assert root.find("inner/leaf") == (inner, "leaf")

    async def test_event_stream_tells_the_story(self, nursery: trio.Nursery) -> None:
        journal = Journal()
        worker = Worker("w", journal)
        supervisor = Supervisor([worker.spec()], id="sup", intensity=0)
        received: list[tuple[str, str]] = []

        async def listen(*, task_status: Any) -> None:
            async with supervisor.events.subscribe() as events:
                task_status.started()
                async for event in events:
                    received.append((event.kind, event.path))

        await nursery.start(listen)
        outcome: list[BaseException] = []

        async def run(*, task_status: Any) -> None:
            try:
                await supervisor.run(task_status=task_status)
            except Exception as exc:
                outcome.append(exc)

        await nursery.start(run)
        worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert received == [("started", "sup/w"), ("exited", "sup/w"), ("escalated", "sup")]
        assert len(outcome) == 1 and supervisor.state is ChildState.FAILED
