"""Erlang/OTP-style supervision on trio.

A *supervisor* starts its *children* one at a time, in order, waiting for each to report ready
(``task_status.started(handle)``), restarts them by *restart strategy* when they exit, gives up by
*escalating* to its parent after more than *intensity* restarts within *period* seconds, and stops
them in reverse order, each within its *shutdown* budget. The terms follow the Erlang/OTP Design
Principles, "Supervisor Behaviour".

Public names live here; the implementation is in the private ``_*`` modules.
"""

from aria.supervisor._child import (
    ChildContext,
    ChildState,
    ExitReason,
    current_child,
    shield_until_killed,
    shutdown_grace,
)
from aria.supervisor._events import EventBus, SupervisorEvent
from aria.supervisor._launcher import (
    ProcessLauncher,
    current_launcher,
    open_process_launcher,
    run_command,
)
from aria.supervisor._probes import HttpProbe, LogLineProbe, Probe, TcpProbe, UnixSocketProbe
from aria.supervisor._process import OSProcess, ProcessSpec, process_child
from aria.supervisor._registry import Registry, ServiceRef
from aria.supervisor._spec import (
    BRUTAL_KILL,
    INFINITY,
    AutoShutdown,
    ChildSpec,
    ChildType,
    Restart,
    Strategy,
)
from aria.supervisor._supervisor import ChildCounts, ChildInfo, ChildKilled, DynamicSupervisor, Supervisor

__all__ = [
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
