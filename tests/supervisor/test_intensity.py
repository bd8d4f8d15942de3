"""Restart intensity, escalation and significant children, on virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from aria.errors import Escalation
from aria.supervisor import ChildState, Supervisor
from tests.supervisor.helpers import Journal, Worker


async def supervise(supervisor: Supervisor, outcome: list[BaseException], *, task_status: Any) -> None:
    """Run a supervisor and keep the exception it ends with (instead of failing the nursery)."""
    try:
        await supervisor.run(task_status=task_status)
    except Escalation as exc:
        outcome.append(exc)


class TestIntensity:
    async def test_default_intensity_allows_one_restart_in_five_seconds(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """OTP defaults (1 in 5 s): the second crash within 5 s escalates."""
        journal = Journal()
        worker = Worker("w", journal)
        supervisor = Supervisor([worker.spec()], id="sup")
        outcome: list[BaseException] = []
        await nursery.start(supervise, supervisor, outcome)
        worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert worker.incarnations == 2 and not outcome
        await trio.sleep(4.9)  # virtual time (autojump_clock)
        worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert len(outcome) == 1
        assert "'sup' reached its restart intensity (more than 1 restarts in 5 s)" in str(outcome[0])
        assert "child 'w': RuntimeError: w crashed" in str(outcome[0])
        assert supervisor.state is ChildState.FAILED

    async def test_restarts_outside_the_period_are_forgotten(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A crash every 5.1 s never escalates with intensity 1, period 5."""
        journal = Journal()
        worker = Worker("w", journal)
        supervisor = Supervisor([worker.spec()])
        outcome: list[BaseException] = []
        await nursery.start(supervise, supervisor, outcome)
        for _ in range(5):
            worker.crash()
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(5.1)  # virtual time (autojump_clock)
        assert not outcome
        assert worker.incarnations == 6

    async def test_a_restart_storm_across_children_escalates(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Restarts are counted per supervisor: 4 crashes of 3 different children exceed intensity 3,
        although no single child crashed more than twice (triotp counts per child and would not)."""
        journal = Journal()
        workers = [Worker(name, journal) for name in ("a", "b", "c")]
        supervisor = Supervisor([w.spec() for w in workers], intensity=3, period=10)
        outcome: list[BaseException] = []
        await nursery.start(supervise, supervisor, outcome)
        for worker in (workers[0], workers[1], workers[2]):
            worker.crash()
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(1)  # virtual time (autojump_clock)
        assert not outcome
        journal.clear()
        workers[0].crash()
        await trio.testing.wait_all_tasks_blocked()
        assert len(outcome) == 1
        # On escalation every remaining child is stopped in reverse order, none restarted.
        assert journal == [("stop", "a"), ("stop", "c"), ("stop", "b")]

    async def test_escalation_is_handled_by_the_parent(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A child supervisor that escalates is restarted by its parent with fresh children."""
        journal = Journal()
        inner_worker = Worker("inner", journal)
        inner = Supervisor([inner_worker.spec()], intensity=0, id="inner")
        sibling = Worker("sibling", journal)
        parent = Supervisor([sibling.spec(), inner.child_spec()], strategy="one_for_one", intensity=2)
        await nursery.start(parent.run)
        journal.clear()
        inner_worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert journal == [("stop", "inner"), ("start", "inner")]
        children = parent.snapshot()["children"]
        assert children[1]["restarts"] == 1
        assert "reached its restart intensity" in children[1]["last_error"]
        assert children[0]["restarts"] == 0

    async def test_intensity_zero_escalates_on_the_first_crash(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        journal = Journal()
        worker = Worker("w", journal)
        outcome: list[BaseException] = []
        await nursery.start(supervise, Supervisor([worker.spec()], intensity=0), outcome)
        worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert len(outcome) == 1 and worker.incarnations == 1


class TestSignificantChildren:
    async def test_any_significant_stops_the_supervisor(self, autojump_clock: trio.testing.MockClock) -> None:
        """auto_shutdown=any_significant: a significant transient child's normal exit ends run()."""
        journal = Journal()
        a, b, c = (Worker(n, journal) for n in ("a", "b", "c"))
        supervisor = Supervisor(
            [a.spec(), b.spec(restart="transient", significant=True), c.spec()],
            auto_shutdown="any_significant",
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            journal.clear()
            b.finish()
        # run() returned by itself, after stopping the others in reverse order.
        assert journal == [("stop", "b"), ("stop", "c"), ("stop", "a")]
        assert supervisor.state is ChildState.STOPPED

    async def test_all_significant_waits_for_every_significant_child(self, nursery: trio.Nursery) -> None:
        journal = Journal()
        a, b = (Worker(n, journal) for n in ("a", "b"))
        supervisor = Supervisor(
            [a.spec(restart="temporary", significant=True), b.spec(restart="temporary", significant=True)],
            auto_shutdown="all_significant",
        )
        await nursery.start(supervisor.run)
        a.finish()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.state is ChildState.RUNNING
        b.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.state is ChildState.STOPPED

    async def test_a_restarted_significant_child_does_not_stop_the_supervisor(
        self, nursery: trio.Nursery
    ) -> None:
        """A transient significant child that crashes is restarted, so nothing shuts down."""
        journal = Journal()
        worker = Worker("w", journal)
        supervisor = Supervisor(
            [worker.spec(restart="transient", significant=True)], auto_shutdown="any_significant", intensity=3
        )
        await nursery.start(supervisor.run)
        worker.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.state is ChildState.RUNNING and worker.incarnations == 2

    def test_significant_children_need_auto_shutdown(self) -> None:
        worker = Worker("w", Journal())
        with pytest.raises(ValueError, match="child 'w' is significant, which needs auto_shutdown"):
            Supervisor([worker.spec(restart="transient", significant=True)])

    def test_a_permanent_child_cannot_be_significant(self) -> None:
        with pytest.raises(ValueError, match="significant child must be transient or temporary"):
            Worker("w", Journal()).spec(significant=True)
