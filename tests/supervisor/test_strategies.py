"""Restart strategies, restart types, start order and stop order."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from aria.errors import StartError
from aria.supervisor import ChildSpec, ChildState, Supervisor
from tests.supervisor.helpers import Journal, Worker


def three_workers() -> tuple[Journal, list[Worker]]:
    journal = Journal()
    return journal, [Worker(name, journal) for name in ("a", "b", "c")]


class TestStrategies:
    async def test_one_for_one_restarts_only_the_failed_child(self, nursery: trio.Nursery) -> None:
        """one_for_one: b's crash restarts b alone."""
        journal, (a, b, c) = three_workers()
        supervisor = Supervisor([w.spec() for w in (a, b, c)], strategy="one_for_one", intensity=5)
        await nursery.start(supervisor.run)
        journal.clear()
        b.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [("stop", "b"), ("start", "b")]
        assert [w.incarnations for w in (a, b, c)] == [1, 2, 1]

    async def test_one_for_all_restarts_everyone_in_order(self, nursery: trio.Nursery) -> None:
        """one_for_all: the others stop in reverse order, then all start again in order."""
        journal, (a, b, c) = three_workers()
        supervisor = Supervisor([w.spec() for w in (a, b, c)], strategy="one_for_all", intensity=5)
        await nursery.start(supervisor.run)
        journal.clear()
        b.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [
            ("stop", "b"),
            ("stop", "c"),
            ("stop", "a"),
            ("start", "a"),
            ("start", "b"),
            ("start", "c"),
        ]

    async def test_rest_for_one_restarts_the_failed_child_and_those_after_it(
        self, nursery: trio.Nursery
    ) -> None:
        """rest_for_one: b's crash restarts b and c, not a."""
        journal, (a, b, c) = three_workers()
        supervisor = Supervisor([w.spec() for w in (a, b, c)], strategy="rest_for_one", intensity=5)
        await nursery.start(supervisor.run)
        journal.clear()
        b.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]
        assert [w.incarnations for w in (a, b, c)] == [1, 2, 2]

    async def test_rest_for_one_on_the_last_child_is_one_for_one(self, nursery: trio.Nursery) -> None:
        """rest_for_one: the last child's crash touches nobody else."""
        journal, workers = three_workers()
        supervisor = Supervisor([w.spec() for w in workers], strategy="rest_for_one", intensity=5)
        await nursery.start(supervisor.run)
        journal.clear()
        workers[2].crash()
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [("stop", "c"), ("start", "c")]

    async def test_temporary_sibling_is_stopped_but_not_restarted(self, nursery: trio.Nursery) -> None:
        """one_for_all: a temporary sibling stopped by the strategy stays stopped, as in OTP."""
        journal, (a, b, c) = three_workers()
        supervisor = Supervisor(
            [a.spec(), b.spec(), c.spec(restart="temporary")], strategy="one_for_all", intensity=5
        )
        await nursery.start(supervisor.run)
        journal.clear()
        a.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [("stop", "a"), ("stop", "c"), ("stop", "b"), ("start", "a"), ("start", "b")]
        assert supervisor.which_children()[2].state is ChildState.STOPPED


class TestRestartTypes:
    @pytest.mark.parametrize(
        ("restart", "how", "restarted"),
        [
            ("permanent", "crash", True),
            ("permanent", "finish", True),
            ("transient", "crash", True),
            ("transient", "finish", False),
            ("temporary", "crash", False),
            ("temporary", "finish", False),
        ],
    )
    async def test_restart_type(self, nursery: trio.Nursery, restart: str, how: str, restarted: bool) -> None:
        """permanent always restarts, transient only after a crash, temporary never."""
        journal = Journal()
        worker = Worker("w", journal)
        supervisor = Supervisor([worker.spec(restart=restart)], intensity=5)
        await nursery.start(supervisor.run)
        getattr(worker, how)()
        await trio.testing.wait_all_tasks_blocked()
        assert worker.incarnations == (2 if restarted else 1)
        expected_state = (
            ChildState.RUNNING if restarted else (ChildState.FAILED if how == "crash" else ChildState.STOPPED)
        )
        assert supervisor.which_children()[0].state is expected_state


class TestOrder:
    async def test_children_start_in_order_each_after_the_previous_is_ready(self) -> None:
        """A child starts only after the previous one called task_status.started()."""
        seen: list[str] = []

        async def child(name: str, *, task_status: object) -> None:
            seen.append(f"{name} starting")
            await trio.lowlevel.checkpoint()
            seen.append(f"{name} ready")
            task_status.started()  # type: ignore[attr-defined]
            await trio.sleep_forever()

        supervisor = Supervisor([ChildSpec(n, child, args=(n,)) for n in ("a", "b", "c")])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            await supervisor.stop()
        assert seen == ["a starting", "a ready", "b starting", "b ready", "c starting", "c ready"]

    async def test_stop_goes_in_reverse_start_order(self) -> None:
        """stop() stops c, then b, then a, and run() returns."""
        journal, workers = three_workers()
        supervisor = Supervisor([w.spec() for w in workers])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            journal.clear()
            await supervisor.stop()
        assert journal == [("stop", "c"), ("stop", "b"), ("stop", "a")]
        assert supervisor.state is ChildState.STOPPED

    async def test_outside_cancellation_still_stops_in_reverse_order(self) -> None:
        """Cancelling the task running the supervisor does not stop the children all at once."""
        journal, workers = three_workers()
        supervisor = Supervisor([w.spec() for w in workers])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            journal.clear()
            nursery.cancel_scope.cancel()
        assert journal == [("stop", "c"), ("stop", "b"), ("stop", "a")]

    async def test_a_supervisor_can_run_again_after_stopping(self) -> None:
        """run() after stop() starts the children afresh (as an OTP supervisor's init would)."""
        journal, workers = three_workers()
        supervisor = Supervisor([w.spec() for w in workers])
        for _ in range(2):
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                await supervisor.stop()
        assert journal.of("start") == ["a", "b", "c", "a", "b", "c"]


class TestChildManagement:
    async def test_terminate_and_restart_child(self, nursery: trio.Nursery) -> None:
        """terminate_child keeps the child stopped (not restarted); restart_child brings it back."""
        _, (a, b, c) = three_workers()
        supervisor = Supervisor([w.spec() for w in (a, b, c)])
        await nursery.start(supervisor.run)
        await supervisor.terminate_child("b")
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.which_children()[1].state is ChildState.STOPPED
        assert b.incarnations == 1
        handle = await supervisor.restart_child("b")
        assert handle is b
        assert b.incarnations == 2
        assert supervisor.count_children().active == 3

    async def test_kill_child_counts_as_a_crash(self, nursery: trio.Nursery) -> None:
        """kill_child is an abnormal exit: the strategy restarts it and the restart is counted."""
        journal, (a, b, c) = three_workers()
        supervisor = Supervisor([w.spec() for w in (a, b, c)], strategy="rest_for_one", intensity=5)
        await nursery.start(supervisor.run)
        journal.clear()
        await supervisor.kill_child("b")
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]
        snapshot = supervisor.snapshot()
        assert snapshot["restarts"] == 1
        assert "killed on request" in snapshot["children"][1]["last_error"]

    async def test_start_child_appends_and_delete_child_forgets(self, nursery: trio.Nursery) -> None:
        """start_child adds a child at the end; delete_child removes a stopped one."""
        _, (a, b, c) = three_workers()
        supervisor = Supervisor([a.spec(), b.spec()])
        await nursery.start(supervisor.run)
        assert await supervisor.start_child(c.spec()) is c
        assert [info.id for info in supervisor.which_children()] == ["a", "b", "c"]
        await supervisor.terminate_child("c")
        await supervisor.delete_child("c")
        assert [info.id for info in supervisor.which_children()] == ["a", "b"]

    async def test_operations_on_unknown_children_name_the_child(self, nursery: trio.Nursery) -> None:
        _, (a, _, _) = three_workers()
        supervisor = Supervisor([a.spec()], id="sup")
        await nursery.start(supervisor.run)
        with pytest.raises(Exception, match="has no child 'nope'"):
            await supervisor.terminate_child("nope")

    async def test_deleting_a_running_child_is_refused(self, nursery: trio.Nursery) -> None:
        _, (a, _, _) = three_workers()
        supervisor = Supervisor([a.spec()])
        await nursery.start(supervisor.run)
        with pytest.raises(Exception, match="is running; terminate it before deleting"):
            await supervisor.delete_child("a")

    async def test_start_child_failure_is_reported_to_the_caller(self, nursery: trio.Nursery) -> None:
        """A child added at run time that fails to start raises StartError; the supervisor goes on."""

        async def broken(*, task_status: object) -> None:
            raise OSError("disk on fire")

        _, (a, _, _) = three_workers()
        supervisor = Supervisor([a.spec()], id="sup")
        await nursery.start(supervisor.run)
        with pytest.raises(StartError, match="'sup/broken' failed to start: OSError: disk on fire"):
            await supervisor.start_child(ChildSpec("broken", broken))
        assert [info.id for info in supervisor.which_children()] == ["a"]
        assert supervisor.state is ChildState.RUNNING
