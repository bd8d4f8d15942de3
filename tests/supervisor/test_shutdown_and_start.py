"""Shutdown budgets (graceful stop, then kill) and start failures, on virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from aria.errors import StartError
from aria.supervisor import ChildSpec, ChildState, Supervisor
from tests.supervisor.helpers import Journal, Worker, slow_cleanup, stubborn


class TestShutdownBudgets:
    async def test_a_child_that_ignores_the_stop_is_killed_when_its_budget_ends(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """shutdown=3: the clean-up that would run forever is killed after exactly 3 s."""
        journal = Journal()
        supervisor = Supervisor([ChildSpec("s", stubborn, args=(journal, "s"), shutdown=3)])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            await supervisor.stop()
            assert trio.current_time() - began == pytest.approx(3.0)
        assert journal == [("cleanup-begins", "s"), ("killed", "s")]

    async def test_clean_up_within_the_budget_completes(self, autojump_clock: trio.testing.MockClock) -> None:
        """A child needing 2 s of clean-up with a 5 s budget finishes it; stop takes 2 s."""
        journal = Journal()
        supervisor = Supervisor([ChildSpec("s", slow_cleanup, args=(journal, "s", 2.0), shutdown=5)])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            await supervisor.stop()
            assert trio.current_time() - began == pytest.approx(2.0)
        assert journal == [("cleaned-up", "s")]

    async def test_brutal_kill_gives_no_grace(self, autojump_clock: trio.testing.MockClock) -> None:
        journal = Journal()
        supervisor = Supervisor([ChildSpec("s", stubborn, args=(journal, "s"), shutdown="brutal_kill")])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            await supervisor.stop()
            assert trio.current_time() == began
        assert journal == [("cleanup-begins", "s"), ("killed", "s")]

    async def test_infinity_waits_as_long_as_it_takes(self, autojump_clock: trio.testing.MockClock) -> None:
        journal = Journal()
        supervisor = Supervisor(
            [ChildSpec("s", slow_cleanup, args=(journal, "s", 500.0), shutdown="infinity")]
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            await supervisor.stop()
            assert trio.current_time() - began == pytest.approx(500.0)
        assert journal == [("cleaned-up", "s")]

    async def test_budgets_apply_one_child_at_a_time_in_reverse_order(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """b (3 s) is killed first, then a (2 s): the whole stop takes 5 s and no child is skipped."""
        journal = Journal()
        supervisor = Supervisor(
            [
                ChildSpec("a", stubborn, args=(journal, "a"), shutdown=2),
                ChildSpec("b", stubborn, args=(journal, "b"), shutdown=3),
            ]
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            await supervisor.stop()
            assert trio.current_time() - began == pytest.approx(5.0)
        assert journal == [
            ("cleanup-begins", "b"),
            ("killed", "b"),
            ("cleanup-begins", "a"),
            ("killed", "a"),
        ]

    async def test_a_hung_grandchild_is_killed_through_its_supervisor(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A child supervisor with a finite budget kills its own hung children when that budget ends."""
        journal = Journal()
        inner = Supervisor(
            [ChildSpec("hung", stubborn, args=(journal, "hung"), shutdown="infinity")], id="inner"
        )
        spec = inner.child_spec()
        outer = Supervisor([ChildSpec(spec.id, spec.start, type="supervisor", shutdown=4)])
        async with trio.open_nursery() as nursery:
            await nursery.start(outer.run)
            began = trio.current_time()
            await outer.stop()
            assert trio.current_time() - began == pytest.approx(4.0)
        assert journal == [("cleanup-begins", "hung"), ("killed", "hung")]

    async def test_root_shutdown_timeout_bounds_everything(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A root's shutdown_timeout kills what is still running when it passes."""
        journal = Journal()
        supervisor = Supervisor(
            [ChildSpec("s", stubborn, args=(journal, "s"), shutdown="infinity")], shutdown_timeout=7
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            await supervisor.stop()
            assert trio.current_time() - began == pytest.approx(7.0)
        assert journal == [("cleanup-begins", "s"), ("killed", "s")]

    async def test_kill_stops_at_once(self, autojump_clock: trio.testing.MockClock) -> None:
        """Supervisor.kill() (a second Ctrl-C) does not wait for budgets."""
        journal = Journal()
        supervisor = Supervisor([ChildSpec("s", stubborn, args=(journal, "s"), shutdown=30)])
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            began = trio.current_time()
            supervisor.kill()
        assert trio.current_time() == began
        assert ("killed", "s") in journal

    async def test_budget_overrun_is_an_event(self, autojump_clock: trio.testing.MockClock) -> None:
        journal = Journal()
        supervisor = Supervisor([ChildSpec("s", stubborn, args=(journal, "s"), shutdown=1)], id="sup")
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            await supervisor.stop()
        kinds = [(event.kind, event.path) for event in supervisor.events.recent()]
        assert ("killed", "sup/s") in kinds


class TestStartFailures:
    async def test_a_raising_child_fails_the_boot_and_earlier_children_stop(self) -> None:
        """The error names the child and the cause; a stops, c never starts."""
        journal = Journal()

        async def broken(*, task_status: Any) -> None:
            raise ConnectionRefusedError("port 5432")

        a, c = Worker("a", journal), Worker("c", journal)
        supervisor = Supervisor([a.spec(), ChildSpec("b", broken), c.spec()], id="sup")
        with pytest.raises(StartError) as info:
            await supervisor.run()
        assert str(info.value) == "child 'sup/b' failed to start: ConnectionRefusedError: port 5432"
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert journal == [("start", "a"), ("stop", "a")]
        assert supervisor.state is ChildState.FAILED

    async def test_a_child_that_is_never_ready_times_out(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        async def never_ready(*, task_status: Any) -> None:
            await trio.sleep_forever()

        supervisor = Supervisor([ChildSpec("slow", never_ready, start_timeout=2)], id="sup")
        began = trio.current_time()
        with pytest.raises(
            StartError, match="'sup/slow' failed to start: not ready within its start_timeout of 2 s"
        ):
            await supervisor.run()
        assert trio.current_time() - began == pytest.approx(2.0)

    async def test_returning_without_started_is_a_start_failure(self) -> None:
        async def forgetful(*, task_status: Any) -> None:
            return

        with pytest.raises(StartError, match=r"returned without calling task_status\.started"):
            await Supervisor([ChildSpec("f", forgetful)]).run()

    async def test_a_nested_failure_names_the_innermost_child(self) -> None:
        async def broken(*, task_status: Any) -> None:
            raise FileNotFoundError("initdb")

        inner = Supervisor([ChildSpec("db", broken)], id="app")
        outer = Supervisor([inner.child_spec()], id="root")
        with pytest.raises(
            StartError, match=r"child 'root/app/db' failed to start: FileNotFoundError: initdb"
        ):
            await outer.run()

    async def test_a_failed_restart_is_retried_and_counted(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A child that crashes and then fails to start twice comes back on the third try."""
        attempts: list[int] = []
        crash = trio.Event()

        async def flaky(*, task_status: Any) -> None:
            attempts.append(1)
            if 2 <= len(attempts) <= 3:
                raise OSError("not yet")
            task_status.started()
            if len(attempts) == 1:
                await crash.wait()
                raise RuntimeError("crash")
            await trio.sleep_forever()

        supervisor = Supervisor([ChildSpec("f", flaky)], intensity=5)
        await nursery.start(supervisor.run)
        crash.set()
        await trio.testing.wait_all_tasks_blocked()
        assert len(attempts) == 4
        assert supervisor.snapshot()["restarts"] == 3
        assert supervisor.which_children()[0].state is ChildState.RUNNING


class TestSpecValidation:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"shutdown": -1}, "shutdown=-1 must be a number of seconds >= 0"),
            ({"shutdown": "later"}, "shutdown='later' must be seconds, 'brutal_kill' or 'infinity'"),
            ({"restart": "sometimes"}, "restart='sometimes' is not one of permanent, transient, temporary"),
            ({"start_timeout": 0}, "start_timeout=0 must be > 0 seconds"),
            ({"type": "manager"}, "type='manager' is not one of worker, supervisor"),
        ],
    )
    def test_bad_specs_fail_at_construction(self, options: dict[str, Any], message: str) -> None:
        async def noop(*, task_status: Any) -> None:
            task_status.started()

        with pytest.raises(ValueError, match=message):
            ChildSpec("x", noop, **options)

    def test_defaults_follow_otp(self) -> None:
        async def noop(*, task_status: Any) -> None:
            task_status.started()

        assert ChildSpec("w", noop).shutdown == 5.0
        assert ChildSpec("s", noop, type="supervisor").shutdown == "infinity"

    def test_duplicate_ids_and_bad_strategy_are_rejected(self) -> None:
        journal = Journal()
        with pytest.raises(ValueError, match="two children have the id 'a'"):
            Supervisor([Worker("a", journal).spec(), Worker("a", journal).spec()])
        with pytest.raises(ValueError, match="strategy='one_for_some' is not one of"):
            Supervisor([], strategy="one_for_some")
        with pytest.raises(ValueError, match="intensity=-1 must be an integer >= 0"):
            Supervisor([], intensity=-1)
