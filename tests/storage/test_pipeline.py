"""The pipeline helpers: ordered parallel map with a bounded window, errors, the progress bar."""

from __future__ import annotations

import io

import pytest
import trio
import trio.testing

from aria.apps.storage.pipeline import Progress, map_ordered, single_errors


async def numbers(count: int, taken: list[int]) -> trio.MemoryReceiveChannel[int]:
    send, receive = trio.open_memory_channel[int](count)
    for number in range(count):
        send.send_nowait(number)
        taken.append(number)
    send.close()
    return receive


class TestMapOrdered:
    async def test_results_come_in_order_whatever_finishes_first(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        async def job(number: int) -> int:
            await trio.sleep((10 - number) * 0.01)  # later items finish first (virtual time)
            return number * number

        async with trio.open_nursery() as nursery:
            results = [r async for r in map_ordered(nursery, await numbers(10, []), job, 4)]
        assert results == [n * n for n in range(10)]

    async def test_at_most_the_window_runs_at_once(self, autojump_clock: trio.testing.MockClock) -> None:
        running = 0
        peak = 0

        async def job(number: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await trio.sleep(1)
            running -= 1
            return number

        async with trio.open_nursery() as nursery:
            results = [r async for r in map_ordered(nursery, await numbers(12, []), job, 3)]
        assert results == list(range(12))
        assert peak == 3
        assert trio.current_time() == pytest.approx(4.0)  # 12 jobs, 3 at a time, 1 s each

    async def test_an_error_cancels_the_pipeline_and_surfaces_alone(self) -> None:
        started: list[int] = []

        async def job(number: int) -> int:
            started.append(number)
            if number == 2:
                raise KeyError("bad item 2")
            await trio.sleep_forever()
            return number

        async def drain() -> None:
            with single_errors():
                async with trio.open_nursery() as nursery:
                    async for _ in map_ordered(nursery, await numbers(100, []), job, 4):
                        pass

        with pytest.raises(KeyError, match="bad item 2"):
            await drain()
        assert len(started) <= 4

    async def test_a_bad_window(self) -> None:
        async with trio.open_nursery() as nursery:
            with pytest.raises(ValueError, match="concurrency must be at least 1"):
                map_ordered(nursery, await numbers(1, []), trio.sleep, 0)


class TestProgress:
    def test_draws_only_on_a_terminal_or_when_forced(self) -> None:
        quiet = io.StringIO()
        bar = Progress("make", 100, stream=quiet)
        bar.advance(100)
        bar.close()
        assert quiet.getvalue() == ""
        shown = io.StringIO()
        bar = Progress("make", 100, stream=shown, force=True)
        bar.advance(50)
        bar.close()
        assert "make [###############" in shown.getvalue() and "100.0%" not in shown.getvalue()
        assert "50.0%" in shown.getvalue() and shown.getvalue().endswith("\n")
