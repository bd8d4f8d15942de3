"""GTPyhop's ``test_harness`` helpers, which its examples import as ``gtpyhop.test_harness``."""

from __future__ import annotations

from typing import Any


def check_result(actual: Any, expected: Any) -> None:
    """Raise if ``actual != expected``; otherwise say so (unless both are None).

    Raises:
        Exception: ``Actual result differs from expected result.`` (the type and text GTPyhop's
            examples rely on), with both values attached as ``args[1:]``.
    """
    if actual != expected:
        raise Exception("Actual result differs from expected result.", actual, expected)  # noqa: TRY002
    if actual is not None:
        print("check_result> The result is as expected.\n")


def pause(do_pause: bool = True) -> None:
    """Wait for Enter (or ``d`` to enter the debugger) when ``do_pause``; otherwise just continue."""
    if not do_pause:
        print("Continuing.")
        return
    answer = input(">>> Type Enter to continue, or d to debug: ")
    if answer == "d":
        breakpoint()
    else:
        print("=" * 71)


__all__ = ["check_result", "pause"]
