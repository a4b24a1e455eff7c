"""Login throttling per source address: failures slow a source down, then
refuse it for a while; a source may have only so many connections negotiating.

Every password check costs an scrypt (16 MiB, ~50 ms of the whole process's
CPU), so an unauthenticated storm of wrong passwords would otherwise both
guess at about 19 passwords a second and slow the relay for everyone.  This
is the policy, as a state machine with an injected clock and no I/O (the
SSH adapter in ``server`` sleeps, answers and logs):

* the first ``free_failures`` failures of a source cost it nothing (typos);
  after that its next attempt waits ``first_delay``, doubling with each
  failure up to ``max_delay``;
* after ``refuse_after`` failures the source is refused for ``refuse_for``
  seconds: its attempts are answered "failed" without checking anything
  (no hashing), one per ``refused_pace`` at most;
* attempts of one source are serialized in time, whatever the number of
  connections they come on: each takes the next free slot;
* a source quiet for ``forget_after`` is forgotten, and a successful login
  forgets it at once;
* public-key failures weigh ``key_weight`` of a password failure: a client
  legitimately offers several keys before its password, and a key check
  costs no scrypt;
* at most ``max_unauthenticated`` connections of a source negotiate (SSH
  handshake, authentication, subsystem) at once; up to ``max_waiting``
  more wait, without any SSH work, and each takes the place of one that is
  done, in order (a station opening 50 sessions at once gets them all, a
  little later); one that waited ``max_wait`` is closed when its turn
  comes, and beyond ``max_waiting`` they are closed at once;
* the table of remembered sources holds at most ``max_sources``; the least
  recently active is forgotten first, so a spray of addresses cannot grow
  memory (it can only make the daemon forget older offenders sooner).

The source is the client's IP address.  An IPv4 client on a dual-stack
socket (``::ffff:a.b.c.d``) is its IPv4 address.  An IPv6 source is the
full address, not its /64: a management LAN is typically one /64, and
throttling the prefix would let one misbehaving host lock every operator
out.  The price is that an attacker owning a /64 can rotate addresses; the
table bound keeps that from costing memory, and the server's bound on
concurrent handshakes bounds the CPU.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from nf.config.tree import Node

Clock = Callable[[], float]
Credential = Literal["password", "publickey"]


@dataclass(frozen=True)
class Policy:
    """The throttle's parameters; the defaults are the daemon's."""

    free_failures: int = 3
    """Failures of a source that do not delay its next attempt (typos)."""
    first_delay: float = 1.0
    """Seconds the attempt after the first delayed failure waits ..."""
    max_delay: float = 8.0
    """... doubling with each failure up to this."""
    refuse_after: int = 6
    """Failures after which the source is refused ..."""
    refuse_for: float = 60.0
    """... for this long: its attempts are answered unchecked ..."""
    refused_pace: float = 1.0
    """... one per this many seconds at most."""
    forget_after: float = 600.0
    """A source that neither failed nor was refused for this long is forgotten."""
    key_weight: float = 0.25
    """What a rejected public key counts, a password failure counting 1."""
    max_unauthenticated: int = 32
    """Connections of a source negotiating at once.  Not lower: a management
    station may open a score of sessions in parallel; half the server's
    handshake places, so that one address can never take them all."""
    max_waiting: int = 128
    """Connections of a source waiting for a place among its negotiating
    ones (an open socket each, nothing else); beyond, closed at once."""
    max_wait: float = 30.0
    """Seconds a connection may wait for its place; closed after that."""
    max_sources: int = 4096
    """Sources remembered (about 200 bytes each)."""


class Verdict(NamedTuple):
    """What to do with one authentication attempt."""

    wait: float
    """Seconds to hold the attempt before answering (or checking) it."""
    refuse: bool
    """Answer "failed" without checking the credentials."""


class Change(enum.Enum):
    """What a failure changed for its source, for the adapter to log once."""

    NONE = "none"
    DELAYING = "delaying"
    """Its attempts are now delayed."""
    REFUSING = "refusing"
    """Its attempts are now refused for ``refuse_for``."""


@dataclass
class Counters:
    """Since the throttle was made; reported in <get> as /netconf-server."""

    failed_passwords: int = 0
    failed_public_keys: int = 0
    refused_logins: int = 0
    refused_connections: int = 0


@dataclass
class _Record:
    last: float
    """The last failure or refused attempt: the quiet period runs from here."""
    score: float = 0.0
    """Failures, a public key counting ``key_weight``."""
    next_slot: float = 0.0
    """No attempt of the source is evaluated before this time."""
    refused_until: float = -math.inf


def source_of(host: str) -> str:
    """The throttled source of a peer address (see the module docstring)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class Waiter(Protocol):
    """A connection waiting for its source's place to negotiate."""

    def start(self) -> None:
        """Its turn: negotiate in the place a connection of its source left."""

    def close(self) -> None:
        """No turn: it waited ``max_wait``, or the server stops."""


class Admission(enum.Enum):
    NEGOTIATE = "negotiate"
    WAIT = "wait"
    REFUSE = "refuse"


class Throttle:
    """Per-source failure records and negotiating connections; thread-safe
    (paramiko checks credentials in each connection's own thread)."""

    def __init__(self, policy: Policy | None = None, clock: Clock = time.monotonic) -> None:
        self.policy = policy if policy is not None else Policy()
        self._clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._open: dict[str, int] = {}
        self._waiting: dict[str, deque[tuple[float, Waiter]]] = {}
        self.counters = Counters()

    # -- authentication --------------------------------------------------------
    def attempt(self, source: str) -> Verdict:
        """Before checking credentials of ``source``: how long to hold the
        attempt, and whether to refuse it unchecked."""
        with self._lock:
            now = self._clock()
            rec = self._live(source, now)
            if rec is None:
                return Verdict(0.0, False)
            self._records.move_to_end(source)
            start = max(now, rec.next_slot)
            refused = now < rec.refused_until
            if refused or start - now > self.policy.max_delay:
                # refused, or so many attempts queued already (on parallel
                # connections) that holding this one longer would only tie
                # up a thread: answer it unchecked after the longest delay
                if start - now > self.policy.max_delay:
                    start = now + self.policy.max_delay
                else:
                    rec.next_slot = start + self.policy.refused_pace
                rec.last = now
                self.counters.refused_logins += 1
                return Verdict(start - now, True)
            rec.next_slot = start + self._spacing(rec, start)
            return Verdict(start - now, False)

    def failed(self, source: str, credential: Credential) -> Change:
        """Credentials of ``source`` were checked and did not match."""
        with self._lock:
            now = self._clock()
            if credential == "password":
                self.counters.failed_passwords += 1
            else:
                self.counters.failed_public_keys += 1
            rec = self._live(source, now)
            if rec is None:
                rec = self._insert(source, now)
            self._records.move_to_end(source)
            was_delayed = self._delay(rec.score) > 0
            rec.score += 1.0 if credential == "password" else self.policy.key_weight
            rec.last = now
            change = Change.NONE
            if rec.score >= self.policy.refuse_after and now >= rec.refused_until:
                rec.refused_until = now + self.policy.refuse_for
                change = Change.REFUSING
            elif not was_delayed and self._delay(rec.score) > 0:
                change = Change.DELAYING
            rec.next_slot = max(rec.next_slot, now + self._spacing(rec, now))
            return change

    def succeeded(self, source: str) -> None:
        """A login of ``source`` succeeded: its failures are forgiven."""
        with self._lock:
            self._records.pop(source, None)

    def refusing(self, source: str) -> bool:
        """Whether attempts of ``source`` are refused now."""
        with self._lock:
            now = self._clock()
            rec = self._live(source, now)
            return rec is not None and now < rec.refused_until

    def sources(self) -> int:
        """How many sources are remembered (bounded by ``max_sources``)."""
        with self._lock:
            return len(self._records)

    def state(self, namespace: str) -> Node:
        """/netconf-server of our module (config false), to merge into <get>."""
        with self._lock:
            values = {
                "failed-password-logins": self.counters.failed_passwords,
                "failed-public-key-logins": self.counters.failed_public_keys,
                "refused-logins": self.counters.refused_logins,
                "refused-connections": self.counters.refused_connections,
                "throttled-sources": len(self._records),
            }
        leaves = Node({(namespace, k): str(v) for k, v in values.items()})
        return Node({(namespace, "netconf-server"): leaves})

    # -- connections -----------------------------------------------------------
    def connection_opened(self, source: str) -> bool:
        """A connection of ``source`` starts negotiating; False: it is over
        the cap and must be closed without any SSH work."""
        return self.admit(source, None) is Admission.NEGOTIATE

    def admit(self, source: str, waiter: Waiter | None) -> Admission:
        """A connection of ``source`` arrives: it negotiates now, or (with a
        ``waiter``) waits for a place (``Waiter.start`` is called when one
        is left to it), or is over both bounds and must be closed without
        any SSH work (counted)."""
        with self._lock:
            count = self._open.get(source, 0)
            if count < self.policy.max_unauthenticated:
                self._open[source] = count + 1
                return Admission.NEGOTIATE
            waiting = len(self._waiting.get(source, ()))
            if waiter is not None and waiting < self.policy.max_waiting:
                self._waiting.setdefault(source, deque()).append((self._clock(), waiter))
                return Admission.WAIT
            self.counters.refused_connections += 1
            return Admission.REFUSE

    def connection_done(self, source: str) -> None:
        """A connection admitted by ``admit`` ended negotiating (it is a
        session now, or it is gone): its place goes to the source's first
        waiting connection, if any waits (started here, outside the lock;
        those that waited too long are closed on the way, counted)."""
        expired: list[Waiter] = []
        turn: Waiter | None = None
        with self._lock:
            now = self._clock()
            queue = self._waiting.get(source)
            while queue and turn is None:
                since, waiter = queue.popleft()
                if now - since > self.policy.max_wait:
                    expired.append(waiter)
                    self.counters.refused_connections += 1
                else:
                    turn = waiter
            if queue is not None and not queue:
                del self._waiting[source]
            if turn is None:
                count = self._open.get(source, 0) - 1
                if count > 0:
                    self._open[source] = count
                else:
                    self._open.pop(source, None)
        for waiter in expired:
            waiter.close()
        if turn is not None:
            turn.start()  # in the place just left: the count stays

    def waiting(self, source: str) -> int:
        with self._lock:
            return len(self._waiting.get(source, ()))

    def drain_waiting(self) -> list[Waiter]:
        """Every waiting connection, forgotten (the server stops: it closes them)."""
        with self._lock:
            found = [waiter for queue in self._waiting.values() for _, waiter in queue]
            self._waiting.clear()
            return found

    def negotiating(self, source: str) -> int:
        with self._lock:
            return self._open.get(source, 0)

    # -- internals -------------------------------------------------------------
    def _delay(self, score: float) -> float:
        over = math.floor(score) - self.policy.free_failures
        if over < 0:
            return 0.0
        return min(self.policy.first_delay * 2.0**over, self.policy.max_delay)

    def _spacing(self, rec: _Record, now: float) -> float:
        """How long after an attempt at ``now`` the next one may be evaluated."""
        if now < rec.refused_until:
            return self.policy.refused_pace
        return self._delay(rec.score)

    def _live(self, source: str, now: float) -> _Record | None:
        """The record of ``source``, unless it is absent or forgotten."""
        rec = self._records.get(source)
        if rec is None:
            return None
        if now - rec.last >= self.policy.forget_after and now >= rec.refused_until:
            del self._records[source]
            return None
        return rec

    def _insert(self, source: str, now: float) -> _Record:
        while len(self._records) >= self.policy.max_sources:
            self._records.popitem(last=False)  # the least recently active
        rec = self._records[source] = _Record(last=now)
        return rec


class LogLimiter:
    """At most ``burst`` lines per ``interval`` (a token bucket), so a storm
    of failures or refused connections cannot flood the log; thread-safe."""

    def __init__(
        self, burst: int = 20, interval: float = 10.0, clock: Clock = time.monotonic
    ) -> None:
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._at = clock()
        self._dropped = 0

    def allow(self) -> int | None:
        """None: drop this line.  Otherwise log it, with the number of lines
        dropped since the last one logged (to say so)."""
        with self._lock:
            now = self._clock()
            rate = self.burst / self.interval
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * rate)
            self._at = now
            if self._tokens < 1.0:
                self._dropped += 1
                return None
            self._tokens -= 1.0
            dropped, self._dropped = self._dropped, 0
            return dropped
