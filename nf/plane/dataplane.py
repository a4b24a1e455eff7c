"""The data-plane process: the relay runtime behind a Unix socket.

    python -m nf.plane.dataplane --socket PATH [--log-level LEVEL]

or ``run_dataplane(path)`` in a child process.  It holds every serial fd
and relay socket (``nf.runtime.relay.RelayRuntime``) and imports nothing
of the control plane: no schema, XML, NETCONF or SSH code (tests check its
``sys.modules``), so management work cannot stall a relay and a control
plane that fails or restarts leaves the relays running.

The socket (mode 0600; a stale one is replaced) takes one control plane
at a time.  A connection starts with ``Hello`` of our protocol version
(nf.plane.messages); a newer connection that does so replaces the older
one (the control plane restarted and its old connection may not look dead
yet).  When a connection ends, every transaction it prepared and did not
apply or abort is aborted, before the next connection is answered: what a
control plane held is released before its successor asks for anything.

Requests are handled one at a time, in order, each to its end (a request
in progress when its connection goes is finished, not cut short: an apply
half done would leave the relay in no configuration at all).  So no
commit is applied while a snapshot is read, although reading 500 channels
yields to the relays every ``SNAPSHOT_SLICE`` (each slice is encoded as it
is read); snapshot requests that queued up meanwhile get the same reply.

Events (the relay's session-event and port-event, and ``drops`` when a
channel's dropped-bytes rose, looked for once a second) go to the
connected control plane, and before every reply, so that the events a
request caused arrive before its reply.  Without a control plane they wait
in a backlog of at most 1000, the oldest dropped, counted and logged.

SIGTERM or SIGINT: every channel stops (sessions get CLOSE_TIMEOUT to
flush, all at once), the events this caused are sent if a control plane is
connected, the socket is removed, and the process exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
from anyio.abc import ByteStream, SocketListener, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from nf import rfc3339
from nf.heap import gc_paused
from nf.plane.core import DropsWatch, EventBacklog
from nf.plane.messages import (
    REQUESTS,
    VERSION,
    Abort,
    Aborted,
    Applied,
    Apply,
    BreakStarted,
    ClearCounters,
    Cleared,
    Event,
    Failed,
    Framed,
    FrameError,
    Hello,
    HelloReply,
    Inspect,
    InspectReply,
    Prepare,
    Prepared,
    Refused,
    Reply,
    Request,
    Running,
    RunningReply,
    SendBreak,
    SnapshotParts,
    SnapshotReply,
    SnapshotRequest,
    encode,
    encode_part,
)
from nf.runtime.relay import RelayRuntime, StatesRead, yield_to_relays
from nf.runtime.transaction import DocumentMismatch, Fault, PrepareError, Transaction

log = logging.getLogger("nf.plane.dataplane")  # not __main__ under python -m

HELLO_TIMEOUT = 10.0
"""A connection that has not said Hello by then is closed."""
DROPS_INTERVAL = 1.0
"""How often dropped-bytes counters are looked at (one drops event per
channel per interval at most)."""
DROPS_SLICE = 500
"""Channels whose drop counters are read between two yields to the relays."""
FINAL_FLUSH = 0.25
"""How long shutting down waits to send the last events."""
EVENT_BACKLOG = 1000
EVENT_BATCH = 500
"""Events sent in one write (frames concatenated, about 100 KiB at most)."""


def settle_gc(stopped: bool) -> None:
    """Keep the garbage collector's full passes off the relays.  A full
    collection walks every object: with 500 channels, 110 000 of them and
    30 ms with the loop held, every so often, whenever state kept across
    <get>s had grown gen2 enough.  After an apply that started channels
    and stopped none, what exists is frozen (``gc.freeze``: never walked
    again, still freed by reference counting), so that automatic
    collections walk only what was made since.  After one that stopped
    channels, their objects may now be cyclic garbage: everything is
    unfrozen and left to the automatic collections, as before (a forced
    collection there would pause the relays at every such commit: 338 ms
    at 5000 channels), until an apply freezes it again."""
    if stopped:
        gc.unfreeze()
    else:
        gc.freeze()


@dataclass(frozen=True, slots=True)
class _Sent:
    """A whole snapshot as the data plane sent it."""

    read: StatesRead
    """What it was read from (``RelayRuntime.read_states``)."""
    channels: list[msgspec.Raw]
    ports: list[msgspec.Raw]
    """The encodings of its states, in its order (one port per channel)."""
    seq: int
    twice: bool
    """A port was in it twice (sent once): no change of it is sent."""


class _Connection:
    """One control plane's connection and what it holds."""

    def __init__(self, framed: Framed[Request], predecessor: _Connection | None) -> None:
        self.framed = framed
        self.predecessor = predecessor
        """The connection this one replaced: it must be closed (its
        transactions aborted) before this one is answered."""
        self.pending: dict[int, Transaction] = {}
        """Prepared, neither applied nor aborted yet."""
        self.scope = anyio.CancelScope()
        self.closed = anyio.Event()
        self.send_lock = anyio.Lock()
        """Held over the events flushed before a reply and the reply."""


class DataPlane:
    """Serves control planes on a listener, in front of ``runtime``.  Its
    ``event`` method is the runtime's event sink."""

    def __init__(
        self, runtime: RelayRuntime, *, pid: int, started_at: str, backlog: int = EVENT_BACKLOG
    ) -> None:
        self.runtime = runtime
        self.pid = pid
        self.started_at = started_at
        self._backlog = EventBacklog(backlog)
        self._wake = anyio.Event()
        self._current: _Connection | None = None
        self._drops = DropsWatch()
        self.snapshots_built = 0
        self.snapshots_whole = 0
        """How many snapshots were read (requests that queued up behind one
        share it)."""
        self._encoded: _Sent | None = None
        """The last whole snapshot sent."""
        self._seq = 0

    # -- events ---------------------------------------------------------------------
    def event(self, kind: str, payload: dict[str, str]) -> None:
        """Queue an event for the control plane (never blocks)."""
        if self._backlog.put((kind, payload)):
            log.warning(
                "events are not being taken by a control plane: the oldest beyond %d are dropped",
                self._backlog.limit,
            )
        self._wake.set()

    async def _flush(self, framed: Framed[Request]) -> None:
        lost = self._backlog.take_unreported()
        if lost:
            log.warning(
                "%d events were dropped while no control plane took them (%d since the start)",
                lost,
                self._backlog.dropped,
            )
        while self._backlog:
            # many events in one write: sent one per write (a loop iteration
            # each), the events of a commit starting 10 000 channels came
            # faster than they went, and the backlog overflowed
            items = [self._backlog.take() for _ in range(min(len(self._backlog), EVENT_BATCH))]
            frames = bytearray()
            for kind, payload in items:
                frames += encode(Event(kind, payload))
            try:
                await framed.send_frame(frames)
            except BaseException:
                for item in reversed(items):
                    self._backlog.put_back(item)
                raise

    async def _push(self, conn: _Connection) -> None:
        """Send events as they come (between replies)."""
        while True:
            if not self._backlog:
                wake = self._wake = anyio.Event()
                await wake.wait()
            if not await self._send(conn, None):
                return

    async def _send(self, conn: _Connection, frame: bytearray | None) -> bool:
        """The waiting events, then ``frame`` (a reply) if any; False (the
        connection is cancelled) when the connection is broken."""
        try:
            async with conn.send_lock:
                await self._flush(conn.framed)
                if frame is not None:
                    await conn.framed.send_frame(frame)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            log.info("control-plane connection lost: %s", str(exc) or type(exc).__name__)
            conn.scope.cancel()
            return False
        return True

    async def watch_drops(self, interval: float = DROPS_INTERVAL) -> None:
        """A drops event for each channel whose dropped-bytes rose."""
        while True:
            await anyio.sleep(interval)
            counters: dict[str, tuple[object, int]] = {}
            channels = list(self.runtime.channels.items())
            for start in range(0, len(channels), DROPS_SLICE):
                if start:
                    await yield_to_relays()  # 10 000 channels in one go held the relays ~10 ms
                for name, ch in channels[start : start + DROPS_SLICE]:
                    counters[name] = (ch.counters, ch.counters.dropped_bytes)
            for rise in self._drops.look(counters):
                log.info("drops channel=%s dropped-bytes=%d", rise.channel, rise.total)
                self.event("drops", rise.payload())

    # -- connections ----------------------------------------------------------------
    async def serve(self, listener: SocketListener) -> None:
        """Accept control planes until cancelled."""
        async with listener, anyio.create_task_group() as tg:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and the like: keep serving
                    log.error("cannot accept a control-plane connection: %s", exc)
                    await anyio.sleep(0.1)
                    continue
                tg.start_soon(self._connection, stream)

    async def _connection(self, stream: ByteStream) -> None:
        framed = Framed(stream, REQUESTS)
        try:
            hello = await self._hello(framed)
        except Exception:
            log.exception("control-plane connection failed during hello")
            hello = None
        if hello is None:
            await framed.aclose()
            return
        conn = _Connection(framed, self._current)
        if conn.predecessor is not None:
            log.info("a control plane connected: it replaces the previous connection")
            conn.predecessor.scope.cancel()
        self._current = conn
        try:
            with conn.scope:
                if conn.predecessor is not None:
                    await conn.predecessor.closed.wait()
                await framed.send(
                    HelloReply(
                        VERSION, self.pid, self.started_at, self.runtime.document is not None
                    )
                )
                log.debug("control plane connected (protocol version %d)", VERSION)
                send, receive = anyio.create_memory_object_stream[Request](64)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._push, conn)
                    tg.start_soon(self._read, conn, send)
                    await self._process(conn, receive)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.info("control-plane connection lost during hello")
        except Exception:  # a bug: this connection ends, the data plane goes on
            log.exception("control-plane connection failed")
        finally:
            with anyio.CancelScope(shield=True):
                await self._close(conn)

    async def _hello(self, framed: Framed[Request]) -> Hello | None:
        """The connection's Hello, or None (logged) when it is not one we speak."""
        try:
            with anyio.fail_after(HELLO_TIMEOUT):
                hello = await framed.receive()
        except TimeoutError:
            log.warning("a connection sent no hello within %s s: closed", HELLO_TIMEOUT)
            return None
        except FrameError as exc:
            log.warning("bad frame instead of a hello: %s; connection closed", exc)
            return None
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
        if not isinstance(hello, Hello):
            log.warning("a connection began with %s, not hello: closed", type(hello).__name__)
            reason = f"the first message must be hello, not {type(hello).__name__}"
        elif hello.version != VERSION:
            log.warning(
                "a control plane speaks protocol version %d, this data plane %d: refused",
                hello.version,
                VERSION,
            )
            reason = (
                f"protocol version {hello.version} is not supported: "
                f"this data plane speaks version {VERSION}"
            )
        else:
            return hello
        with contextlib.suppress(Exception):
            await framed.send(Failed(reason))
        return None

    async def _close(self, conn: _Connection) -> None:
        if self._current is conn:
            self._current = None
        if conn.predecessor is not None:
            await conn.predecessor.closed.wait()
            conn.predecessor = None
        for txid, transaction in conn.pending.items():
            log.info("transaction %d was left by its control plane: aborted", txid)
            try:
                await transaction.abort()
            except Exception:
                log.exception("abort of transaction %d failed", txid)
        conn.pending.clear()
        await conn.framed.aclose()
        conn.closed.set()

    async def _read(self, conn: _Connection, requests: MemoryObjectSendStream[Request]) -> None:
        """Requests into ``requests`` until the connection ends; then the
        connection is cancelled (after its request in progress)."""
        try:
            async with requests:
                while True:
                    request = await conn.framed.receive()
                    if isinstance(request, Hello):
                        raise FrameError("a second hello")
                    try:  # without a yield: requests that came together queue together
                        requests.send_nowait(request)
                    except anyio.WouldBlock:
                        await requests.send(request)
        except anyio.EndOfStream:
            log.debug("control plane disconnected")
        except FrameError as exc:
            log.warning("bad frame from the control plane: %s; connection closed", exc)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            log.info("control-plane connection lost: %s", str(exc) or type(exc).__name__)
        finally:
            conn.scope.cancel()

    async def _process(
        self, conn: _Connection, requests: MemoryObjectReceiveStream[Request]
    ) -> None:
        held: Request | None = None
        while True:
            if held is not None:
                request, held = held, None
            else:
                try:
                    request = await requests.receive()
                except anyio.EndOfStream:
                    return
            if isinstance(request, SnapshotRequest):
                frame = await self.snapshot_frame(request.channels, request.since)
                count = 1
                while True:  # the same requests that queued meanwhile share it
                    try:
                        later = requests.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    if later != request:
                        held = later
                        break
                    count += 1
                for _ in range(count):
                    if not await self._send(conn, frame):
                        return
                continue
            with anyio.CancelScope(shield=True):
                reply = await self._handle(conn, request)
            if not await self._send(conn, encode(reply)):
                return

    async def snapshot_frame(
        self, names: tuple[str, ...] | None = None, since: int | None = None
    ) -> bytearray:
        """A SnapshotReply frame; of the channels ``names`` only, if given
        (a filtered <get>: read and encoded afresh, in time of the
        selection).  A whole one re-encodes only the states read afresh
        (``RelayRuntime.read_states``); when the control plane keeps the
        last whole one (``since``) and the channels are the same, only
        those states are sent (``SnapshotParts.base``)."""
        self.snapshots_built += 1
        runtime = self.runtime
        if names is not None:
            states = runtime.read_picked(frozenset(names))
            picked = {port.name: port for _, port in states}
            return encode(SnapshotReply(tuple(c for c, _ in states), tuple(picked.values())))
        read = await runtime.read_states()
        last = self._encoded
        self._seq += 1
        if read.fresh is None or last is None or last.read is not read.after:
            channels = [encode_part(channel) for channel, _ in read.states]
            ports = [encode_part(port) for _, port in read.states]
            # the channels' ports change only with the channels (serial-port
            # is a restart leaf): looked at when they do, not at every <get>
            twice = len({port.name for _, port in read.states}) != len(ports)
        else:
            twice = last.twice
            channels, ports = list(last.channels), list(last.ports)
            changed = sorted(read.fresh)
            for i in changed:
                channel, port = read.states[i]
                channels[i] = encode_part(channel)
                ports[i] = encode_part(port)
            if since is not None and since == last.seq and not twice:
                self._encoded = _Sent(read, channels, ports, self._seq, twice)
                return encode(
                    SnapshotParts(
                        tuple(channels[i] for i in changed),
                        tuple(ports[i] for i in changed),
                        self._seq,
                        since,
                        tuple(changed),
                    )
                )
        self._encoded = _Sent(read, channels, ports, self._seq, twice)
        self.snapshots_whole += 1
        if twice:  # a port twice: once, as a dict would (and never sent as a change)
            unique: dict[str, msgspec.Raw] = {}
            for (_, port), raw in zip(read.states, ports, strict=True):
                unique[port.name] = raw
            return encode(SnapshotParts(tuple(channels), tuple(unique.values()), self._seq))
        return encode(SnapshotParts(tuple(channels), tuple(ports), self._seq))

    async def _handle(self, conn: _Connection, request: Request) -> Reply:
        try:
            return await self._carry_out(conn, request)
        except Exception as exc:
            log.exception("%s failed", type(request).__name__)
            return Failed(f"internal error: {type(exc).__name__}: {exc}")

    async def _carry_out(self, conn: _Connection, request: Request) -> Reply:
        runtime = self.runtime
        if isinstance(request, Prepare):
            if request.txid in conn.pending:
                return Failed(f"transaction {request.txid} is already prepared")
            try:
                with gc_paused():
                    transaction = await runtime.prepare(
                        request.delta, request.document, request.boot
                    )
            except PrepareError as exc:
                return Refused(request.txid, tuple(exc.faults))
            except DocumentMismatch as exc:
                fault = Fault(DocumentMismatch.FAULT_TAG, str(exc), "", "")
                return Refused(request.txid, (fault,))
            conn.pending[request.txid] = transaction
            return Prepared(request.txid)
        if isinstance(request, Apply):
            if request.txid not in conn.pending:
                return Failed(f"no transaction {request.txid} is prepared")
            started, stopped = runtime.channels_started, runtime.channels_stopped
            with gc_paused():
                await conn.pending.pop(request.txid).apply()
                # before collection resumes: frozen, what the apply made
                # is not walked by the pass its allocations have set off
                if runtime.channels_stopped != stopped:
                    settle_gc(stopped=True)
                elif runtime.channels_started != started:
                    settle_gc(stopped=False)
            return Applied(request.txid)
        if isinstance(request, Abort):
            if request.txid in conn.pending:
                await conn.pending.pop(request.txid).abort()
            return Aborted(request.txid)
        if isinstance(request, Running):
            running = await runtime.running()
            return RunningReply(*running) if running is not None else RunningReply(None, None)
        if isinstance(request, ClearCounters):
            await runtime.clear_counters(request.channel)
            return Cleared()
        if isinstance(request, SendBreak):
            return BreakStarted(await runtime.send_break(request.port, request.duration_ms))
        if isinstance(request, Inspect):
            return InspectReply(
                self.pid,
                tuple(sorted(sys.modules)),
                self._backlog.dropped,
                len(runtime.channels),
                self.snapshots_built,
                self.snapshots_whole,
            )
        return Failed(f"{type(request).__name__} is not a request here")

    async def shutdown(self) -> None:
        """Stop every channel, then send the events that caused (briefly)."""
        await self.runtime.shutdown()
        conn = self._current
        if conn is not None:
            with anyio.move_on_after(FINAL_FLUSH, shield=True), contextlib.suppress(Exception):
                async with conn.send_lock:
                    await self._flush(conn.framed)


async def serve(
    socket_path: Path, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Run the data plane on ``socket_path`` until SIGTERM or SIGINT."""
    runtime = RelayRuntime()
    plane = DataPlane(runtime, pid=os.getpid(), started_at=rfc3339.now())
    runtime.add_event_sink(plane.event)
    listener = await anyio.create_unix_listener(socket_path, mode=0o600)
    ours = os.stat(socket_path)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            tg.start_soon(plane.serve, listener)
            tg.start_soon(plane.watch_drops)
            log.debug("data plane listening on %s", socket_path)
            task_status.started()
            async for signum in signals:
                log.debug(
                    "received %s: closing every port and session", signal.Signals(signum).name
                )
                break
            await plane.shutdown()
            tg.cancel_scope.cancel()
    with contextlib.suppress(OSError):  # unless another data plane took the path since
        now = os.stat(socket_path)
        if (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino):
            os.unlink(socket_path)


def run_dataplane(socket_path: Path | str) -> int:
    """The data plane's main: serve until SIGTERM; the exit status."""
    try:
        anyio.run(serve, Path(socket_path))
    except OSError as exc:
        log.error("data plane cannot listen on %s: %s", socket_path, exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nf.plane.dataplane", description=__doc__)
    parser.add_argument("--socket", required=True, help="Unix socket to serve the control plane on")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    return run_dataplane(args.socket)


if __name__ == "__main__":
    sys.exit(main())
