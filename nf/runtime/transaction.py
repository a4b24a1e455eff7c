"""The hand-off between the NETCONF server and the relay runtime.

A commit is validated by the config core, then handed to the runtime in two
phases, as FRRouting's northbound does (VALIDATE, PREPARE, ABORT, APPLY):

1. ``prepare(changes, old, new)`` acquires every resource the changes need
   (bind listeners, open serial ports, join groups) and may fail with
   ``PrepareError``; it must release whatever it acquired before raising.
2. On success the server calls ``Transaction.apply()``, which cannot fail:
   it stops removed channels and starts new ones with the prepared
   resources.  If the server decides not to go ahead (test-only, a
   concurrent failure), it calls ``Transaction.abort()`` instead.

Everything here runs on the event loop; NETCONF threads reach it only
through the portal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from nf.config.diff import Change
from nf.config.errors import ConfigError
from nf.config.model import RelayConfig
from nf.config.tree import Node

EventSink = Callable[[str, dict[str, str]], None]
"""Receives the runtime's events: ("session-event" | "port-event", payload
whose keys are the leaves of the YANG notification of that name)."""


class PrepareError(Exception):
    """The runtime could not acquire a resource; nothing was changed."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class Transaction(Protocol):
    async def apply(self) -> None:
        """Make the prepared changes live.  Must not fail."""

    async def abort(self) -> None:
        """Release every prepared resource; the runtime is as before."""


class Runtime(Protocol):
    booting: bool
    """Set by the daemon while the boot configuration is applied: a serial
    device missing then is retried by its channel instead of failing the
    boot (SPEC §3), while a commit naming one fails atomically (SPEC §4)."""

    async def prepare(
        self, changes: Sequence[Change], old: RelayConfig, new: RelayConfig
    ) -> Transaction:
        """Acquire what ``changes`` need, or raise PrepareError having released it."""

    async def state(self) -> Node:
        """Operational (config false) data as a tree, from one consistent snapshot."""

    async def clear_counters(self, channel: str | None) -> None:
        """Reset the counters of one channel, or of everything."""

    def add_event_sink(self, sink: EventSink) -> None:
        """Also send every event to ``sink`` (the daemon publishes them as
        notifications); sinks are called on the event loop and must not block."""


class _Done:
    async def apply(self) -> None:
        return None

    async def abort(self) -> None:
        return None


class NullRuntime:
    """Accepts every change and reports no state: the stand-in until the
    relay runtime exists, with the final interface."""

    def __init__(self) -> None:
        self.booting = False
        self.config: RelayConfig | None = None
        self.cleared: list[str | None] = []
        self.sinks: list[EventSink] = []

    async def prepare(
        self, changes: Sequence[Change], old: RelayConfig, new: RelayConfig
    ) -> Transaction:
        del changes, old
        runtime = self

        class _Apply(_Done):
            async def apply(self) -> None:
                runtime.config = new

        return _Apply()

    async def state(self) -> Node:
        return Node()

    async def clear_counters(self, channel: str | None) -> None:
        self.cleared.append(channel)

    def add_event_sink(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def emit(self, kind: str, payload: dict[str, str]) -> None:
        """Produce an event as a channel would (tests)."""
        for sink in self.sinks:
            sink(kind, payload)
