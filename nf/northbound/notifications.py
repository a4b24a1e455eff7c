"""NETCONF event notifications (RFC 5277) and the events of RFC 6470.

This module decides *what* each subscriber receives and *when a
subscription is over*; it does no I/O and runs no threads.  The server
gives every subscribed session a sender thread that takes from the
subscription's ``Outbox`` and writes to the SSH channel; publishers (the
datastores and the relay runtime on the event loop, the session threads)
only call ``Notifications.publish``, which renders the event once, appends
it to the replay log and offers it to each matching outbox.  Publishing
takes a short lock and never waits for a subscriber, so a slow or stuck
client can never hold up the event loop, the relay or other sessions.

Policy for a subscriber that does not keep up: its outbox holds
``OUTBOX_SIZE`` notifications; the first live event that does not fit
ends the subscription and asks the server to close the session
(``on_overflow``).  Dropping events silently would leave the client with a
view it cannot know is wrong (RFC 5277 has no way to say "you missed
some"); a closed session is visible, is counted (``overflows``, and
dropped-sessions in ietf-netconf-monitoring), and the client can
resubscribe with a startTime to replay what it missed from the log, which
is larger than the outbox (``REPLAY_LOG_SIZE`` events).

Time: eventTime is the publisher's clock (UTC, RFC 3339 with
microseconds); the clock is a parameter so tests can drive it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from nf.config.codec import NC_NS, parse, split_tag
from nf.config.diff import Change
from nf.config.errors import ConfigError
from nf.config.tree import Node
from nf.northbound.filters import FilterError, apply_filter, check_event_filter
from nf.rfc3339 import format_time, parse_time
from nf.schema import MAIN_MODULE, SchemaIndex

log = logging.getLogger(__name__)

NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
"""RFC 5277: <notification>, <eventTime>, <create-subscription>."""
MANAGE_NS = "urn:ietf:params:xml:ns:netmod:notification"
"""RFC 5277: <replayComplete>, <notificationComplete>, /netconf/streams."""
NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
"""RFC 6470."""
CAPABILITIES = (
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
)
STREAM = "NETCONF"
"""The one stream (RFC 5277 §3.2.3: the default stream every server has)."""
REPLAY_LOG_SIZE = 8192
"""Events kept for replay; older ones are forgotten, oldest first."""
OUTBOX_SIZE = 4096
"""Live notifications queued for one subscriber before it counts as stuck.

Queues hold references to the one serialised message every subscriber
shares, so a full outbox costs ~32 KiB of pointers plus messages that are
mostly in the replay log anyway.  It is sized for bursts: a 1000-channel
commit publishes a port-event per port faster than any sender drains."""

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event:
    """One published event; its elements are never modified after publish.

    The serialised message and the copy filters read are made on first use
    (then kept): a bulk start publishes thousands of events that no
    subscriber may ever ask for."""

    __slots__ = ("_holder", "_message", "content", "time")

    def __init__(self, time: datetime, content: etree._Element) -> None:
        self.time = time
        self.content = content
        """The event element, e.g. <netconf-config-change>, the <notification>'s content."""
        self._message: bytes | None = None
        self._holder: etree._Element | None = None

    @property
    def message(self) -> bytes:
        """The whole <notification>, serialised once for every subscriber."""
        message = self._message
        if message is None:
            # two threads may both serialise it (equal bytes); neither waits.
            # The envelope is written around the content's bytes, not made
            # as elements: a bulk start made 10 000 envelopes, each with its
            # eventTime, that nobody serialised (8 of the 13 us of an event);
            # the bytes are those lxml wrote for the envelope with the
            # content in it (tests/test_notifications_lazy.py)
            message = b"".join(
                (
                    _ENVELOPE_START,
                    format_time(self.time).encode(),
                    _EVENT_TIME_END,
                    etree.tostring(self.content, encoding="UTF-8"),
                    _ENVELOPE_END,
                )
            )
            self._message = message
        return message

    @property
    def holder(self) -> etree._Element:
        """A <data> element around a copy of ``content``: what filters are applied to."""
        holder = self._holder
        if holder is None:
            holder = etree.Element("data")
            holder.append(etree.fromstring(etree.tostring(self.content)))
            self._holder = holder
        return holder


_ENVELOPE_START = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    + f'<notification xmlns="{NOTIFICATION_NS}"><eventTime>'.encode()
)
_EVENT_TIME_END = b"</eventTime>"
_ENVELOPE_END = b"</notification>"


def make_event(content: etree._Element, when: datetime) -> Event:
    return Event(when, content)


def _marker(name: str, when: datetime) -> Event:
    return make_event(etree.Element(f"{{{MANAGE_NS}}}{name}", nsmap={None: MANAGE_NS}), when)  # type: ignore[dict-item]


class ReplayLog:
    """The last ``size`` events of the NETCONF stream, in publication order."""

    def __init__(self, size: int, created: datetime) -> None:
        self.events: deque[Event] = deque(maxlen=size)
        self.created = created
        """replayLogCreationTime (RFC 5277 §3.2.1)."""

    def append(self, event: Event) -> None:
        self.events.append(event)

    def copy(self) -> ReplayLog:
        """The log as it is now (a copy of references: cheap under a lock)."""
        other = ReplayLog(self.events.maxlen or 0, self.created)
        other.events.extend(self.events)
        return other

    @property
    def oldest(self) -> datetime | None:
        """Time of the oldest event still held: replay cannot start earlier."""
        return self.events[0].time if self.events else None

    def window(self, start: datetime, stop: datetime | None) -> list[Event]:
        """Events with start <= eventTime (<= stop); a start before the
        oldest event simply starts from the oldest (RFC 5277 §2.1.1)."""
        return [e for e in self.events if e.time >= start and (stop is None or e.time <= stop)]


class SubscriptionError(Exception):
    """create-subscription refused; carries the rpc-error."""

    def __init__(self, tag: str, message: str, bad_element: str) -> None:
        super().__init__(message)
        self.error = ConfigError(
            tag, message, type="protocol", info=(("bad-element", bad_element),)
        )


@dataclass(frozen=True)
class Request:
    """The parameters of one <create-subscription>."""

    stream: str = STREAM
    filter: etree._Element | None = None
    start: datetime | None = None
    stop: datetime | None = None


def parse_request(op: etree._Element, now: datetime, schema: SchemaIndex) -> Request:
    """Check <create-subscription>'s parameters (RFC 5277 §2.1.1).

    The filter may be in the notification namespace (the RFC's XSD) or in
    the base namespace (how ncclient builds it); it is tried once here so
    an unknown type or bad XPath is refused now, not at the first event.
    """
    params: dict[str, etree._Element] = {}
    for child in op:
        if not isinstance(child.tag, str):
            continue
        ns, name = split_tag(child.tag)
        known = name in ("stream", "startTime", "stopTime", "filter") and (
            ns == NOTIFICATION_NS or (name == "filter" and ns == NC_NS)
        )
        if not known:
            raise SubscriptionError(
                "unknown-element", f'<create-subscription> has no parameter "{name}"', name
            )
        if name in params:
            raise SubscriptionError("bad-element", f'parameter "{name}" given twice', name)
        params[name] = child
    stream = (params["stream"].text or "").strip() if "stream" in params else STREAM
    if stream != STREAM:
        raise SubscriptionError(
            "invalid-value", f'there is no stream "{stream}" (only {STREAM})', "stream"
        )
    times: dict[str, datetime] = {}
    for name in ("startTime", "stopTime"):
        if name in params:
            try:
                times[name] = parse_time(params[name].text or "")
            except ValueError as exc:
                raise SubscriptionError("invalid-value", str(exc), name) from exc
    start, stop = times.get("startTime"), times.get("stopTime")
    if stop is not None and start is None:
        raise SubscriptionError("missing-element", "stopTime needs a startTime", "startTime")
    if start is not None and start > now:
        raise SubscriptionError(
            "bad-element", f"startTime {format_time(start)} is in the future", "startTime"
        )
    if start is not None and stop is not None and stop < start:
        raise SubscriptionError("bad-element", "stopTime is earlier than startTime", "stopTime")
    flt = params.get("filter")
    if flt is not None:
        try:
            apply_filter(etree.Element("data"), flt, schema)
            check_event_filter(flt)
        except FilterError as exc:
            raise SubscriptionError(
                exc.error.tag, exc.error.message or "bad filter", "filter"
            ) from exc
    return Request(stream, flt, start, stop)


class Subscription:
    """What one session asked for, and where its subscription stands."""

    def __init__(
        self,
        request: Request,
        schema: SchemaIndex,
        permits: Callable[[etree._Element], bool] | None = None,
    ) -> None:
        self.request = request
        self.schema = schema
        self.permits = permits
        """Access control (NACM, RFC 8341 §3.4.6) of the subscriber, given
        the event element; None: unrestricted.  Checked before the filter,
        on replay and live alike: a denied event is never sent."""
        self.done = False
        """notificationComplete has been produced: nothing more is sent."""

    def wants(self, event: Event) -> bool:
        """The filter selects something of the event (RFC 5277 §3.6); the
        event is then sent whole."""
        if self.permits is not None and not self.permits(event.content):
            return False
        if self.request.filter is None:
            return True
        try:
            return len(apply_filter(event.holder, self.request.filter, self.schema)) > 0
        except FilterError:  # checked at subscription; cannot happen
            return False

    def replay(self, replay_log: ReplayLog, now: datetime) -> list[Event]:
        """The replayed events, replayComplete, and notificationComplete when
        stopTime has passed already; nothing without a startTime."""
        start, stop = self.request.start, self.request.stop
        if start is None:
            return []
        events = [e for e in replay_log.window(start, stop) if self.wants(e)]
        events.append(_marker("replayComplete", now))
        if stop is not None and stop <= now:
            events.append(_marker("notificationComplete", now))
            self.done = True
        return events

    def live(self, event: Event) -> bool:
        stop = self.request.stop
        return not self.done and (stop is None or event.time <= stop) and self.wants(event)

    def seconds_left(self, now: datetime) -> float | None:
        """Until stopTime ends the subscription; None: it does not end by time."""
        if self.done or self.request.stop is None:
            return None
        return max(0.0, (self.request.stop - now).total_seconds())

    def expire(self, now: datetime) -> Event | None:
        """notificationComplete once stopTime has passed (RFC 5277 §2.1.1)."""
        left = self.seconds_left(now)
        if left is None or left > 0:
            return None
        self.done = True
        return _marker("notificationComplete", now)


class Outbox:
    """One subscriber's queue, filled by publishers, drained by its sender.

    Thread-safe; ``put`` never blocks.  The sender calls ``take`` until it
    returns None with ``finished`` set.
    """

    def __init__(self, subscription: Subscription, clock: Clock, limit: int) -> None:
        self.subscription = subscription
        self.clock = clock
        self.limit = limit
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self.closed = False
        self.on_finish: Callable[[], None] = lambda: None

    def put(self, message: bytes) -> bool:
        """Queue a live event; False when full."""
        with self._cond:
            if self.closed or self.subscription.done:
                return True  # over: nothing more is due, and that is not an overflow
            if len(self._queue) >= self.limit:
                return False
            self._queue.append(message)
            self._cond.notify()
            return True

    def put_first(self, messages: Sequence[bytes]) -> None:
        """Queue the replay ahead of the live events queued while it was
        computed (it ends with notificationComplete when stopTime has passed
        already).  It is bounded by the log and does not count against the
        limit, which is for the live events behind it."""
        with self._cond:
            if self.closed:
                return
            self.limit += len(messages)
            self._queue.extendleft(reversed(messages))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self.closed or (self.subscription.done and not self._queue)

    def take(self, timeout: float) -> bytes | None:
        """The next message, waiting up to ``timeout`` seconds; at stopTime
        it is notificationComplete.  None when there is nothing yet or the
        subscription is finished (then the caller calls ``on_finish``,
        outside any lock: publish locks the hub, then an outbox)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.closed:
                    return None
                if self._queue:
                    return self._queue.popleft()
                if self.subscription.done:
                    return None
                done = self.subscription.expire(self.clock())
                if done is not None:
                    self._queue.append(done.message)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                left = self.subscription.seconds_left(self.clock())
                self._cond.wait(remaining if left is None else min(remaining, left))


class Notifications:
    """The NETCONF stream: replay log, subscriptions, publication."""

    def __init__(
        self,
        schema: SchemaIndex,
        clock: Clock = utcnow,
        log_size: int = REPLAY_LOG_SIZE,
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        self.schema = schema
        self.clock = clock
        self.log = ReplayLog(log_size, clock())
        self._streams: tuple[datetime, Node] | None = None
        self.outbox_size = outbox_size
        self._lock = threading.Lock()
        self._subscribers: dict[int, Outbox] = {}
        self.overflows = 0
        """Subscriptions ended because their outbox was full."""
        self.on_overflow: Callable[[int], None] = lambda _sid: None
        """Set by the server: close the session of a stuck subscriber."""

    def subscribe(
        self,
        session_id: int,
        request: Request,
        permits: Callable[[etree._Element], bool] | None = None,
    ) -> Outbox:
        """Register a subscription, its replay queued first.

        The log is copied and the subscriber registered in one step under
        the lock, so every event is either in the copy or offered live,
        never both nor neither.  The replay (a filter over up to the whole
        log) is computed after, outside the lock: publishers, the event
        loop among them, never wait for it.
        """
        with self._lock:
            if session_id in self._subscribers:
                raise SubscriptionError(
                    "in-use", "this session already has a subscription", "create-subscription"
                )
            subscription = Subscription(request, self.schema, permits)
            outbox = Outbox(subscription, self.clock, self.outbox_size)
            self._subscribers[session_id] = outbox
            logged = self.log.copy()
        outbox.put_first([e.message for e in subscription.replay(logged, self.clock())])

        def finish() -> None:
            with self._lock:
                if self._subscribers.get(session_id) is outbox:
                    del self._subscribers[session_id]

        outbox.on_finish = finish
        return outbox

    def unsubscribe(self, session_id: int) -> None:
        with self._lock:
            outbox = self._subscribers.pop(session_id, None)
        if outbox is not None:
            outbox.close()

    def subscribed(self, session_id: int) -> bool:
        with self._lock:
            outbox = self._subscribers.get(session_id)
        return outbox is not None and not outbox.finished

    def publish(self, content: etree._Element) -> Event:
        """Log the event and offer it to every matching subscriber; never blocks."""
        with self._lock:
            event = make_event(content, self.clock())
            self.log.append(event)
            stuck = [
                sid
                for sid, outbox in self._subscribers.items()
                if outbox.subscription.live(event) and not outbox.put(event.message)
            ]
            for sid in stuck:
                self._subscribers.pop(sid).close()
            self.overflows += len(stuck)
        for sid in stuck:
            log.warning(
                "session %d: %d notifications unread; closing the session", sid, self.outbox_size
            )
            self.on_overflow(sid)
        return event

    def streams(self) -> Node:
        """/netconf/streams (RFC 5277 §3.4) as state data: built once per
        replay log (its creation time is the only thing in it that
        changes), the same tree at every <get> (whose reply reuses its
        bytes while it is)."""
        created = self.log.created
        kept = self._streams
        if kept is not None and kept[0] == created:
            return kept[1]
        holder = etree.Element("data")
        top = etree.SubElement(holder, f"{{{MANAGE_NS}}}netconf", nsmap={None: MANAGE_NS})  # type: ignore[dict-item]
        streams = etree.SubElement(top, f"{{{MANAGE_NS}}}streams")
        stream = etree.SubElement(streams, f"{{{MANAGE_NS}}}stream")
        for name, value in (
            ("name", STREAM),
            ("description", "NETCONF notifications: RFC 6470 events and the relay's events"),
            ("replaySupport", "true"),
            ("replayLogCreationTime", format_time(self.log.created)),
        ):
            etree.SubElement(stream, f"{{{MANAGE_NS}}}{name}").text = value
        tree, errors = parse(holder, self.schema, allow_state=True)
        if errors:  # our own output must fit the module; a failure is a bug
            raise AssertionError(f"/netconf/streams does not fit nc-notifications: {errors}")
        self._streams = (created, tree)
        return tree


# -- the events ----------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    """A NETCONF session as RFC 6470's common-session-parms name it."""

    username: str
    session_id: int
    source_host: str | None = None


def _leaf(parent: etree._Element, ns: str, name: str, value: object) -> None:
    etree.SubElement(parent, f"{{{ns}}}{name}").text = str(value)


def _session_parms(elem: etree._Element, who: Who) -> None:
    _leaf(elem, NCN_NS, "username", who.username)
    _leaf(elem, NCN_NS, "session-id", who.session_id)
    if who.source_host:
        _leaf(elem, NCN_NS, "source-host", who.source_host)


EDIT_OPERATIONS = {"create": "create", "delete": "delete", "modify": "replace"}
"""diff's change kinds as nc:edit-operation-type: a modified entry is replaced."""


def config_change(
    who: Who | None, changes: Sequence[Change], schema: SchemaIndex, datastore: str = "running"
) -> etree._Element:
    """<netconf-config-change> (RFC 6470 §2.1): who changed ``datastore``
    (running or startup) and the changed entries (instance-identifiers with
    their prefixes declared).  ``who`` None: the server itself (boot)."""
    nsmap: dict[str | None, str] = {
        None: NCN_NS,
        **{schema.prefixes[c.schema.namespace]: c.schema.namespace for c in changes},
    }
    elem = etree.Element(f"{{{NCN_NS}}}netconf-config-change", nsmap=nsmap)  # type: ignore[arg-type]
    by = etree.SubElement(elem, f"{{{NCN_NS}}}changed-by")
    if who is None:
        etree.SubElement(by, f"{{{NCN_NS}}}server")
    else:
        _session_parms(by, who)
    _leaf(elem, NCN_NS, "datastore", datastore)
    for change in changes:
        edit = etree.SubElement(elem, f"{{{NCN_NS}}}edit")
        _leaf(edit, NCN_NS, "target", change.path)
        _leaf(edit, NCN_NS, "operation", EDIT_OPERATIONS[change.op])
    return elem


def session_start(who: Who) -> etree._Element:
    elem = etree.Element(f"{{{NCN_NS}}}netconf-session-start", nsmap={None: NCN_NS})  # type: ignore[dict-item]
    _session_parms(elem, who)
    return elem


TERMINATION_REASONS = frozenset({"closed", "killed", "dropped", "timeout", "bad-hello", "other"})


def session_end(who: Who, reason: str, killed_by: int | None = None) -> etree._Element:
    """<netconf-session-end>; ``reason`` is a RFC 6470 termination-reason."""
    if reason not in TERMINATION_REASONS:
        raise ValueError(f"unknown termination-reason {reason!r}")
    elem = etree.Element(f"{{{NCN_NS}}}netconf-session-end", nsmap={None: NCN_NS})  # type: ignore[dict-item]
    _session_parms(elem, who)
    if reason == "killed" and killed_by:
        _leaf(elem, NCN_NS, "killed-by", killed_by)
    _leaf(elem, NCN_NS, "termination-reason", reason)
    return elem


CONFIRM_EVENTS = frozenset({"start", "cancel", "timeout", "extend", "complete"})


def confirmed_commit(event: str, who: Who | None, timeout: int | None = None) -> etree._Element:
    """<netconf-confirmed-commit> (RFC 6470 §2.4).  The session parameters
    are left out for ``timeout`` (the YANG's when); ``timeout`` (seconds)
    only goes with start and extend."""
    if event not in CONFIRM_EVENTS:
        raise ValueError(f"unknown confirm-event {event!r}")
    elem = etree.Element(f"{{{NCN_NS}}}netconf-confirmed-commit", nsmap={None: NCN_NS})  # type: ignore[dict-item]
    if who is not None and event != "timeout":
        _session_parms(elem, who)
    _leaf(elem, NCN_NS, "confirm-event", event)
    if timeout is not None and event in ("start", "extend"):
        _leaf(elem, NCN_NS, "timeout", timeout)
    return elem


def relay_event(kind: str, payload: dict[str, str], schema: SchemaIndex) -> etree._Element:
    """The runtime's session-event or port-event in our module's namespace,
    leaves in schema order (the payload keys are the YANG leaf names)."""
    ns = schema.modules[MAIN_MODULE].namespace
    snode = schema.notifications[(ns, kind)]
    elem = etree.Element(f"{{{ns}}}{kind}", nsmap={None: ns})  # type: ignore[dict-item]
    for _ns, name in _ordered(snode.children, payload):
        _leaf(elem, ns, name, payload[name])
    return elem


def _ordered(children: Iterable[tuple[str, str]], payload: dict[str, str]) -> list[tuple[str, str]]:
    known = [q for q in children if q[1] in payload]
    unknown = {q[1] for q in known} ^ set(payload)
    if unknown:
        raise ValueError(f"event leaves not in the module: {sorted(unknown)}")
    return known
