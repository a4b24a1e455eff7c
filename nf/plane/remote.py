"""RemoteRuntime: the control plane's Runtime, served by the data-plane process.

It implements ``nf.runtime.transaction.Runtime`` over the data plane's Unix
socket (``nf.plane.dataplane``, messages in ``nf.plane.messages``), on the
control plane's anyio event loop: ``await tg.start(remote.run)`` connects
(retrying for ``connect_timeout`` while the data plane starts) and keeps
the connection; the Runtime methods may then be called from any task.

A lost data plane (end of stream or reset on the socket: noticed as soon
as the kernel closes a dead process's socket) is reconnected to, with
short backoff, for at most ``reconnect_timeout``; the supervisor restarts
the process meanwhile.  After that ``run`` raises DataPlaneUnavailable and
the methods fail or report nothing running, as below.  A data plane that
answers with a different pid or start time than before has restarted and
runs nothing; then, in this order:

* every relay session the event stream said was open gets a session-event
  ``disconnected`` with reason "data plane restarted", and every serial
  port that was open a port-event ``closed`` (the events the dead process
  could not send), counted in ``stats`` (restarts, sessions dropped), with
  one log line saying what happened;
* the configuration last applied is given back whole (prepare of a Delta
  of everything with ``boot=True``, then apply): the relays come back as
  they were.  A channel whose resource cannot be had now (a port taken
  meanwhile) is left out and logged, and the rest runs;
* only then do waiting requests proceed.

A data plane that kept running (only the connection broke) is not
restarted: it kept its channels and sessions, and the events it could not
send were kept for us (nf.plane.dataplane); it did abort what this side
had prepared on the old connection.

Requests in flight when the connection breaks:

* ``prepare`` fails with PrepareError (Fault "operation-failed", "data
  plane restarted", no channel): the commit fails, nothing changed.
* ``Transaction.apply`` does not fail.  The control plane has already
  decided that the new configuration is running (and cannot undo that
  decision: apply must not fail), so it records it as the configuration
  applied, and then makes the data plane run it: the replay after a
  restart gives it the new configuration, and a data plane that applied
  or dropped the transaction on the old connection is brought to it by the
  difference (prepare/apply on the new connection).  Apply is sent
  without waiting for its answer (``_apply``): it returns once sent, or,
  when the connection was lost before it could be sent, once the data
  plane runs it or is gone for good (logged).  Requests made after it
  wait for the reconnection to settle, so they see the new configuration.
* ``Transaction.abort`` succeeds: what was prepared is released by the
  data plane (aborted on disconnect, or gone with the process).
* ``running``, ``snapshot`` and ``clear_counters`` are asked again of the
  reconnected data plane.  With none left: ``snapshot`` reports nothing
  running (every channel "down"), ``clear_counters`` does nothing, and
  ``running`` raises DataPlaneUnavailable.

Replies are matched to requests by order (the data plane answers one at a
time); a send is never cut short by a cancelled caller (a truncated frame
would break the connection for everyone).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, NoReturn, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from nf.liveness import stopped
from nf.model import RelayConfig
from nf.plane.core import RESTART_REASON, OpenSessions
from nf.plane.messages import (
    CONTROL_REPLIES,
    VERSION,
    Abort,
    Applied,
    Apply,
    BreakStarted,
    ClearCounters,
    Cleared,
    ControlReply,
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
    Request,
    Running,
    RunningReply,
    SendBreak,
    SnapshotParts,
    SnapshotRequest,
    StateCache,
)
from nf.protocol.backoff import Backoff
from nf.runtime.document import Document, DocumentPatch
from nf.runtime.transaction import (
    Delta,
    DocumentMismatch,
    EventSink,
    Fault,
    PrepareError,
    Snapshot,
    Transaction,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""How long ``run`` waits for the data plane to answer at first."""
RECONNECT_TIMEOUT = 10.0
"""How long a lost data plane is waited for before giving up."""
HELLO_TIMEOUT = 5.0
RETRY_FIRST = 0.02
RETRY_LIMIT = 0.5
"""Backoff between connection attempts (seconds, doubling)."""

R = TypeVar("R", bound=ControlReply)
T = TypeVar("T")
EMPTY = RelayConfig({}, {})


REQUEST_TIMEOUT = 60.0
"""Seconds the data plane has to answer one request.  Its requests are
bounded work (a prepare of the largest configuration included); one
unanswered for this long means a hung process, which is killed."""
EARLY_EVENTS = 1000
"""Events kept while no sink is added yet (as many as the data plane keeps
while no control plane is connected)."""


def _dead(pid: int) -> bool:
    """Has process ``pid`` ended (gone, or a zombie its parent, the
    supervisor, has not reaped yet)?  The planes share one host, so the
    control plane can tell a dead data plane from a broken connection at
    once instead of waiting for a new one to answer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


class DataPlaneUnavailable(Exception):
    """No data plane answered within the time allowed."""


class DataPlaneError(Exception):
    """The data plane answered, but not as this side can work with (another
    protocol version, an internal error of its own)."""


class _Lost(Exception):
    """The connection broke while a request was in flight."""


@dataclass(frozen=True)
class PlaneStats:
    restarts: int
    """Data-plane restarts seen (a new process answered after a loss)."""
    sessions_dropped: int
    """Relay sessions that were open when their data plane died."""
    connections: int
    """Connections made to a data plane, the first included."""


class _Slot:
    """Where the reply to one request lands (None: the connection broke);
    ``then``, if given, is told of it as it lands (a request whose sender
    does not wait: ``_Link.post``)."""

    __slots__ = ("done", "reply", "then")

    def __init__(self, then: Callable[[ControlReply | None], None] | None = None) -> None:
        self.done = anyio.Event()
        self.reply: ControlReply | None = None
        self.then = then

    def fill(self, reply: ControlReply | None) -> None:
        self.reply = reply
        self.done.set()
        if self.then is not None:
            try:
                self.then(reply)
            except Exception:  # the reader must go on: a bug of this side, logged
                log.exception("handling %s failed", type(reply).__name__)


class _Link:
    """One connection to a data plane: requests out in order, replies
    matched to them in the same order."""

    def __init__(
        self, framed: Framed[ControlReply], hello: HelloReply, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.framed = framed
        self.hello = hello
        self.pending: deque[_Slot] = deque()
        self.lost = anyio.Event()
        self._lock = anyio.Lock()
        self._timeout = timeout
        self.tasks: TaskGroup | None = None
        """Where ``post`` watches a reply (set while the connection is served)."""

    async def call(self, request: Request) -> ControlReply | None:
        """The reply to ``request``; None when the connection broke first,
        or when the data plane did not answer within the timeout: it is
        hung then, and is killed (the supervisor starts a new one, which is
        given the configuration, as after a crash)."""
        slot = _Slot()
        if not await self._send(request, slot):
            return None
        return await self._wait(slot, request)

    async def post(self, request: Request, then: Callable[[ControlReply | None], None]) -> bool:
        """Send ``request`` without waiting for its reply: ``then`` gets it
        (None: the connection broke first) when the reader delivers it.
        False: not sent, the connection was lost already (``then`` is not
        called).  The data plane answers in order, so whatever is asked
        after this is answered after it was carried out.  A data plane that
        never answers it is killed after the timeout, as for ``call``
        (watched by a task of ``tasks``, the connection's task group)."""
        slot = _Slot(then)
        if not await self._send(request, slot):
            return False
        if self.tasks is not None:
            self.tasks.start_soon(self._wait, slot, request)
        return True

    async def _send(self, request: Request, slot: _Slot) -> bool:
        """Queue ``slot`` and send ``request``; False if the connection was
        lost first (nothing sent, ``slot`` not queued)."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if self.lost.is_set():  # checked after the lock: taking it may yield
                    return False
                self.pending.append(slot)
                try:
                    await self.framed.send(request)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.lose()  # the slot gets None, as a request in flight
        return True

    async def _wait(self, slot: _Slot, request: Request) -> ControlReply | None:
        with anyio.move_on_after(self._timeout):
            await slot.done.wait()
            return slot.reply
        pid = self.hello.pid
        log.error(
            "the data plane (pid %d) has not answered %s in %.0f s: it is hung; killing it",
            pid,
            type(request).__name__,
            self._timeout,
        )
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        self.lose()
        return None

    def deliver(self, reply: ControlReply) -> None:
        if not self.pending:
            raise FrameError(f"{type(reply).__name__} answers no request")
        self.pending.popleft().fill(reply)

    def lose(self) -> None:
        """The connection is gone: every request in flight gets None."""
        self.lost.set()
        while self.pending:
            self.pending.popleft().fill(None)

    async def close(self) -> None:
        """Close the connection (the reader then sees it end)."""
        await self.framed.aclose()


@dataclass
class _RemoteTransaction:
    """A transaction the data plane prepared on ``link``."""

    runtime: RemoteRuntime
    link: _Link
    txid: int
    new: RelayConfig
    document: DocumentPatch
    touched: set[str]
    """The channels it stops or restarts (not those changed in place)."""

    async def apply(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.runtime._apply(self)

    async def abort(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.link.call(Abort(self.txid))


class SharedReads(Generic[T]):
    """Concurrent callers of ``read`` share one call of ``fetch``, but never
    one that started before they came: a caller that comes while a fetch
    runs waits for it to end, and all who came meanwhile share the next.

    Why: four sessions looping a full ``<get>`` asked the data plane for
    four snapshots at once.  Each crossed the others, so none could be a
    change against the one before (``SnapshotRequest.since``) and every
    one was sent whole, 1000 states, which the data plane encoded and sent
    between two relay callbacks.  Shared, the data plane serves one read at
    a time, each a change against the last, and a read is still made after
    its caller asked (a counter read then is not older than the request).
    A fetch that fails fails its caller only; those waiting fetch again."""

    def __init__(self, fetch: Callable[[], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._lock = anyio.Lock()
        self._asked = 0
        self._served = 0
        """Callers up to this number have a read made after they came."""
        self._last: T | None = None
        self.fetches = 0

    async def read(self) -> T:
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._served >= ticket and self._last is not None:
                return self._last
            covered = self._asked
            value = await self._fetch()
            self._served, self._last = covered, value
            self.fetches += 1
            return value


def _failed(message: str) -> PrepareError:
    return PrepareError([Fault("operation-failed", message, "", "")])


class RemoteRuntime:
    """nf.runtime.transaction.Runtime served by a data-plane process on
    ``socket_path``; start with ``await tg.start(remote.run)``.  Event sinks
    added before ``run`` see every event; one added later misses those that
    came before (the events that a data plane kept while no control plane
    was connected come right after connecting)."""

    def __init__(
        self,
        socket_path: Path,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        reconnect_timeout: float = RECONNECT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._path = socket_path
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_timeout = reconnect_timeout
        self._sinks: list[EventSink] = []
        self._early: deque[tuple[str, dict[str, str]]] = deque(maxlen=EARLY_EVENTS)
        self._open = OpenSessions()
        self._states = StateCache()
        self._whole = SharedReads(self._whole_snapshot)
        self._current: _Link | None = None
        self._changed = anyio.Event()
        """Set (and replaced) when a connection is ready or none will be."""
        self._gone: str | None = None
        """Why no data plane will answer any more."""
        self._identity: tuple[int, str] | None = None
        self._reported: int | None = None
        """The pid of the last data plane whose death was reported."""
        self._txid = 0
        self._restarts = 0
        self._sessions_dropped = 0
        self._connections = 0
        self.applied: tuple[RelayConfig, Document] | None = None
        """The configuration (and document) the data plane was last told to
        run: what it is given back when it restarts.  The document is kept
        as the data plane keeps it, patched by each commit."""

    @property
    def stats(self) -> PlaneStats:
        return PlaneStats(self._restarts, self._sessions_dropped, self._connections)

    @property
    def connected(self) -> bool:
        """A data plane is connected and settled (False while reconnecting)."""
        link = self._current
        return link is not None and not link.lost.is_set()

    # -- the connection ---------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect and stay connected until cancelled.  Raises
        DataPlaneUnavailable when no data plane answers in time (at first:
        through ``tg.start``), DataPlaneError when one refuses this side."""
        started = False

        def ready() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        timeout = self._connect_timeout
        try:
            while True:
                link = await self._dial(timeout)
                timeout = self._reconnect_timeout
                reason = await self._serve(link, ready)
                self._current = None
                log.warning("data plane (pid %d) %s; reconnecting", link.hello.pid, reason)
                if _dead(link.hello.pid):  # say so now, not once a new one answers
                    self._died(link.hello.pid)
        except BaseException as exc:
            self._gone = str(exc) or type(exc).__name__
            if isinstance(exc, DataPlaneUnavailable | DataPlaneError):
                log.error("%s; giving up on the data plane", exc)
            raise
        finally:
            self._current = None
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _dial(self, timeout: float) -> _Link:
        deadline = anyio.current_time() + timeout
        backoff = Backoff(RETRY_FIRST, RETRY_LIMIT)
        while True:
            try:
                return await self._hello()
            except (
                OSError,
                TimeoutError,
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                FrameError,
            ) as exc:
                failure = exc
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise DataPlaneUnavailable(
                    f"no data plane answered on {self._path} within {timeout:g} s "
                    f"({type(failure).__name__}: {failure})"
                )
            await anyio.sleep(min(backoff.next(), remaining))

    async def _hello(self) -> _Link:
        stream = await anyio.connect_unix(self._path)
        framed = Framed(stream, CONTROL_REPLIES)
        try:
            with anyio.fail_after(HELLO_TIMEOUT):
                await framed.send(Hello(VERSION))
                reply = await framed.receive()
        except BaseException:
            await framed.aclose()
            raise
        if isinstance(reply, HelloReply) and reply.version == VERSION:
            return _Link(framed, reply, self._request_timeout)
        await framed.aclose()
        if isinstance(reply, HelloReply):
            raise DataPlaneError(
                f"the data plane speaks protocol version {reply.version}, "
                f"this control plane version {VERSION}"
            )
        if isinstance(reply, Failed):
            raise DataPlaneError(f"the data plane refused the connection: {reply.message}")
        raise DataPlaneError(f"the data plane answered hello with {type(reply).__name__}")

    async def _serve(self, link: _Link, ready: Callable[[], None]) -> str:
        """Read ``link`` until it breaks (why, returned); meanwhile settle
        it and then offer it to requests."""
        try:
            async with anyio.create_task_group() as tg:
                reason: list[str] = []
                tg.start_soon(self._read, link, reason)
                link.tasks = tg
                try:
                    await self._settle(link)
                except _Lost:
                    pass
                else:
                    self._current = link
                    self._notify()
                    ready()
                await link.lost.wait()
                tg.cancel_scope.cancel()
        finally:
            await link.close()
        return reason[0] if reason else "went away"

    async def _read(self, link: _Link, reason: list[str]) -> None:
        try:
            while True:
                reply = await link.framed.receive()
                if isinstance(reply, Event):
                    self._open.observe(reply.kind, reply.payload)
                    self._dispatch(reply.kind, reply.payload)
                else:
                    link.deliver(reply)
        except anyio.EndOfStream:
            reason.append("closed the connection")
        except FrameError as exc:
            reason.append(f"sent a bad frame ({exc})")
            log.error("bad frame from the data plane: %s", exc)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            reason.append(f"connection lost ({str(exc) or type(exc).__name__})")
        finally:
            link.lose()

    def _dispatch(self, kind: str, payload: dict[str, str]) -> None:
        if not self._sinks:  # kept for the first sink (a daemon still booting)
            self._early.append((kind, payload))
            return
        for sink in self._sinks:
            try:
                sink(kind, payload)
            except Exception:
                log.exception("event sink failed on %s", kind)

    async def _settle(self, link: _Link) -> None:
        """Make a new connection's data plane run what it should, and report
        a restart."""
        hello = link.hello
        identity = (hello.pid, hello.started_at)
        before, self._identity = self._identity, identity
        self._connections += 1
        if before is not None and before != identity:
            if self._reported != before[0]:
                self._died(before[0])
            channels = len(self.applied[0].channels) if self.applied is not None else 0
            log.warning(
                "the data plane restarted (pid %d, was %d): giving it back the configuration "
                "of %d channels",
                hello.pid,
                before[0],
                channels,
            )
        if self.applied is not None:
            await self._converge(link)
        elif hello.has_config:  # a control plane (re)starting: the data plane knows
            running = await self._ask(link, Running(), RunningReply)
            if running.config is not None and running.document is not None:
                kept = Document.of(DocumentPatch.of_bytes(running.document))
                self.applied = (running.config, kept)
        if before is None:
            if hello.has_config:
                parts = await self._ask(link, SnapshotRequest(), SnapshotParts)
                seed = self._states.snapshot(parts, whole=True)
                assert seed is not None  # asked without ``since``: whole
                self._open.seed(seed)
            log.log(
                logging.INFO if hello.has_config else logging.DEBUG,  # a first boot: quiet
                "connected to the data plane (pid %d, %s)",
                hello.pid,
                "running a configuration" if hello.has_config else "no configuration yet",
            )
        elif before == identity:
            log.info("reconnected to the data plane (pid %d): it kept running", hello.pid)

    def _died(self, pid: int) -> None:
        """The data plane ``pid`` is gone with its relay sessions and ports:
        the events it could not send, counted, and a log line."""
        self._reported = pid
        lost = self._open.restart()
        self._restarts += 1
        self._sessions_dropped += lost.sessions
        for kind, payload in lost.events:
            self._dispatch(kind, payload)
        log.warning(
            "the data plane (pid %d) died: %d relay sessions and %d serial ports were dropped",
            pid,
            lost.sessions,
            lost.ports,
        )

    async def _converge(self, link: _Link) -> None:
        """Bring the data plane to ``applied`` (boot: a missing serial device
        is retried by its channel).  Channels it refuses are left out."""
        assert self.applied is not None
        config, document = self.applied
        running = await self._ask(link, Running(), RunningReply)
        delta = Delta.between(running.config or EMPTY, config)
        if not delta and running.document == document.to_bytes():
            return
        whole = document.whole()
        while True:
            txid = self._next_txid()
            reply = await link.call(Prepare(txid, delta, whole, boot=True))
            if isinstance(reply, Prepared):
                base = running.config or EMPTY
                new = delta.applied_to(base)
                ending = self._open.on_channels(stopped(base, new, delta.touched(base, new)))
                await self._ask(link, Apply(txid), Applied)
                self._open.forget(ending)
                return
            if not isinstance(reply, Refused):
                self._unexpected(link, "Prepare", reply)
            for fault in reply.faults:
                log.error("the data plane cannot run channel %s: %s", fault.channel, fault.message)
            refused = {fault.channel for fault in reply.faults}
            channels = {n: c for n, c in delta.channels.items() if n not in refused}
            if len(channels) == len(delta.channels):
                log.error("the data plane refused the configuration; it runs what it can")
                return
            delta = Delta(delta.serial_ports, channels)

    async def _apply(self, transaction: _RemoteTransaction) -> None:
        """Transaction.apply (see the module's docstring).

        Apply is sent without waiting for the data plane's answer: prepare
        acquired everything the change needs, so apply cannot fail, and the
        data plane answers in order, so any later request (a <get>, the
        next prepare) is carried out after it.  Waiting cost every commit a
        second round trip to the data plane (the control plane idle while
        the data plane applied).  ``applied`` is the new configuration
        before the request is sent: a connection lost from then on is
        given it by the next ``_settle``, before any other request."""
        link = transaction.link
        ending = self._open.on_channels(transaction.touched)
        kept = self.applied[1] if self.applied is not None else Document()
        why = kept.check(transaction.document)
        if why is not None:  # the data plane took it: a bug here
            log.error("the control plane's copy of the document is off: %s", why)
            kept = Document()
        else:
            kept.apply(transaction.document)
        self.applied = (transaction.new, kept)
        txid = transaction.txid

        def answered(reply: ControlReply | None) -> None:
            if isinstance(reply, Applied):
                self._open.forget(ending)
            elif reply is not None:  # a data plane that cannot apply has a bug: say so
                log.error("the data plane did not apply transaction %d: %s", txid, reply)
            else:  # the reconnection's _settle gives it ``applied``
                log.warning("the data plane went away during a commit: it is given the new one")
                # the commit ended those sessions, whether the data plane
                # applied it before it went (its answer lost: the sessions
                # were closed) or its successor runs it: not the restart
                # (the reader fills this before the reconnection counts)
                self._open.forget(ending)

        if not await link.post(Apply(txid), answered):
            # lost before it was sent: a reconnection may have settled
            # already, to the configuration before this one
            log.warning("the data plane went away during a commit: it is given the new one")
            await self._catch_up()

    async def _catch_up(self) -> None:
        """After a commit whose apply lost its connection: make the data
        plane run ``applied``."""
        while True:
            try:
                link = await self._link()
            except (DataPlaneUnavailable, DataPlaneError) as exc:
                log.error("the commit could not be given to the data plane: %s", exc)
                return
            try:
                await self._converge(link)
                return
            except _Lost:
                continue

    def _unexpected(self, link: _Link, request: str, reply: ControlReply | None) -> NoReturn:
        """A reply that breaks the protocol (or none): the connection is
        dropped and begun again."""
        if reply is None:
            raise _Lost
        if isinstance(reply, Failed):
            raise DataPlaneError(f"the data plane failed {request}: {reply.message}")
        log.error("the data plane answered %s with %s: reconnecting", request, type(reply).__name__)
        link.lose()
        raise _Lost

    async def _ask(self, link: _Link, request: Request, expect: type[R]) -> R:
        reply = await link.call(request)
        if isinstance(reply, expect):
            return reply
        self._unexpected(link, type(request).__name__, reply)

    async def _link(self) -> _Link:
        """The settled connection, waiting for one while reconnecting."""
        while True:
            if self._gone is not None:
                raise DataPlaneUnavailable(f"the data plane is gone: {self._gone}")
            link = self._current
            if link is not None and not link.lost.is_set():
                return link
            await self._changed.wait()

    async def _request(self, request: Request, expect: type[R]) -> R:
        """Ask, and ask the next data plane again if the connection breaks."""
        while True:
            link = await self._link()
            try:
                return await self._ask(link, request, expect)
            except _Lost:
                continue

    def _next_txid(self) -> int:
        self._txid += 1
        return self._txid

    # -- Runtime ------------------------------------------------------------------------
    async def prepare(
        self, delta: Delta, document: DocumentPatch, boot: bool = False
    ) -> Transaction:
        try:
            link = await self._link()
        except (DataPlaneUnavailable, DataPlaneError) as exc:
            raise _failed(str(exc)) from exc
        base = self.applied[0] if self.applied is not None else EMPTY
        txid = self._next_txid()
        reply = await link.call(Prepare(txid, delta, document, boot))
        if isinstance(reply, Prepared):
            new = delta.applied_to(base)
            ending = stopped(base, new, delta.touched(base, new))
            return _RemoteTransaction(self, link, txid, new, document, ending)
        if isinstance(reply, Refused):
            if reply.faults and reply.faults[0].tag == DocumentMismatch.FAULT_TAG:
                raise DocumentMismatch(reply.faults[0].message)
            raise PrepareError(list(reply.faults))
        if reply is None:
            raise _failed(RESTART_REASON)
        if isinstance(reply, Failed):
            raise _failed(f"data plane: {reply.message}")
        with contextlib.suppress(_Lost):
            self._unexpected(link, "Prepare", reply)
        raise _failed(f"data plane answered prepare with {type(reply).__name__}")

    async def running(self) -> tuple[RelayConfig, bytes] | None:
        reply = await self._request(Running(), RunningReply)
        if reply.config is None or reply.document is None:
            return None
        return reply.config, reply.document

    async def snapshot(self, channels: frozenset[str] | None = None) -> Snapshot:
        """A whole snapshot asks for the states changed since the one kept
        (``StateCache.since``), one read at a time shared by the callers
        that wait for it (``SharedReads``); a change of one no longer kept
        is asked for again, whole."""
        if channels is None:
            return await self._whole.read()
        return await self._read_snapshot(SnapshotRequest(tuple(sorted(channels))), False)

    async def _whole_snapshot(self) -> Snapshot:
        return await self._read_snapshot(SnapshotRequest(None, self._states.since), True)

    async def _read_snapshot(self, request: SnapshotRequest, whole: bool) -> Snapshot:
        try:
            while True:
                parts = await self._request(request, SnapshotParts)
                snapshot = self._states.snapshot(parts, whole=whole)
                if snapshot is not None:
                    return snapshot
                request = SnapshotRequest()
        except DataPlaneUnavailable:
            return Snapshot()  # nothing runs

    async def clear_counters(self, channel: str | None) -> None:
        with contextlib.suppress(DataPlaneUnavailable):  # nothing runs, nothing counts
            await self._request(ClearCounters(channel), Cleared)

    async def send_break(self, port: str, duration_ms: int) -> str | None:
        try:
            reply = await self._request(SendBreak(port, duration_ms), BreakStarted)
        except DataPlaneUnavailable:
            return f"serial port {port} is not open: the data plane is restarting"
        return reply.error

    def add_event_sink(self, sink: EventSink) -> None:
        """Events that came while there was no sink at all (the data plane's
        backlog, sent as soon as a restarted control plane connects, before
        it has booted) go to the first sink added, at once."""
        self._sinks.append(sink)
        early, self._early = self._early, deque(maxlen=EARLY_EVENTS)
        for kind, payload in early:
            self._dispatch(kind, payload)

    async def inspect(self) -> InspectReply:
        """The data plane's own state (tests, troubleshooting)."""
        return await self._request(Inspect(), InspectReply)
