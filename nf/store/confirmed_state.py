"""The confirmed-commit state machine (RFC 6241 §8.4, :confirmed-commit:1.1).

Pure: no I/O, no clock, no event loop.  Every operation takes the current
state (``Pending`` or ``None``), the facts of the request and the wall-clock
time, and returns a ``Decision`` that says what must be done.
``nf.store.confirmed`` carries the decision out (change running through
the engine, write the state file, arm the timer) and only then adopts the
new state, so a commit that fails validation or prepare leaves the
confirmed-commit state as it was.

Error tags, and why:

- A commit or cancel-commit by another session while a *non-persistent*
  confirmed commit is pending is refused with ``in-use`` and the owner's
  session-id in error-info.  §8.4.1 binds the follow-up and confirming
  commits to the issuing session; the other session is refused because a
  resource (the pending confirmation) is held by someone else, which is what
  ``in-use`` means in Appendix A ("the request requires a resource that
  already is in use") and what this server already answers for an edit of a
  datastore locked by another session.  ``operation-failed`` is the
  catch-all "for some reason not covered by any other error condition", and
  here a specific condition exists.
- A ``persist-id`` that matches no pending persistent confirmed commit is
  ``invalid-value`` (ietf-netconf, leaf ``persist-id`` of both <commit> and
  <cancel-commit>: "If it does not match, the operation fails with an
  'invalid-value' error").  That includes a persist-id sent while nothing,
  or only a non-persistent commit, is pending: it matches nothing.
- A commit or cancel-commit without ``persist-id`` while a *persistent*
  confirmed commit is pending is ``missing-element`` (bad-element
  persist-id): §8.4.1 says they "MUST include a <persist-id> element".
- cancel-commit with nothing pending (and no persist-id) is
  ``operation-failed``: the request is well-formed, there is just nothing
  to cancel, and no more specific tag fits.
- ``confirm-timeout`` outside uint32 1..max (ietf-netconf) is
  ``invalid-value``; ``confirm-timeout`` or ``persist`` without
  ``confirmed`` is ``invalid-value`` too rather than silently ignored: a
  client that asks for a persistent or timed commit and gets a permanent
  one has lost its safety net.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nf.config.errors import ConfigError
from nf.config.tree import Node

DEFAULT_TIMEOUT = 600
"""Seconds, the ietf-netconf default of confirm-timeout."""
MAX_TIMEOUT = 2**32 - 1
"""uint32 max: the largest confirm-timeout."""


@dataclass(frozen=True)
class Pending:
    """A confirmed commit waiting for its confirmation."""

    rollback: Node
    """Running as it was before the *first* confirmed commit of this series."""
    owner: int
    """Session that issued the last confirmed commit (binding only when not persistent)."""
    persist: str | None
    """The persist token; None for a non-persistent confirmed commit."""
    deadline: float
    """Wall-clock time (epoch seconds) at which running rolls back."""


@dataclass(frozen=True)
class CommitRequest:
    """The confirmed-commit parameters of one <commit>."""

    confirmed: bool = False
    timeout: int | None = None
    """confirm-timeout in seconds; None: not given (DEFAULT_TIMEOUT)."""
    persist: str | None = None
    persist_id: str | None = None


@dataclass(frozen=True)
class Refuse:
    """Answer with this rpc-error; change nothing."""

    error: ConfigError


@dataclass(frozen=True)
class Apply:
    """Commit the candidate to running; on success the state becomes ``pending``
    (None: no confirmed commit is pending any more)."""

    pending: Pending | None


@dataclass(frozen=True)
class Rollback:
    """Change running back to ``to``; on success nothing is pending any more."""

    to: Node


@dataclass(frozen=True)
class Nothing:
    """No change at all."""


Decision = Refuse | Apply | Rollback | Nothing


def _error(tag: str, message: str, element: str, **info: str) -> Refuse:
    return Refuse(
        ConfigError(
            tag,
            message,
            type="protocol",
            info=(("bad-element", element), *((k.replace("_", "-"), v) for k, v in info.items())),
        )
    )


def parse_timeout(text: str) -> int | ConfigError:
    """confirm-timeout as ietf-netconf types it: uint32, range 1..max."""
    value = text.strip()
    if value.isdigit() and value.isascii() and 1 <= int(value) <= MAX_TIMEOUT:
        return int(value)
    return ConfigError(
        "invalid-value",
        f'confirm-timeout "{value}" is not a number of seconds in 1..{MAX_TIMEOUT}',
        type="protocol",
        info=(("bad-element", "confirm-timeout"),),
    )


def _check_persist_id(state: Pending | None, sid: int, persist_id: str | None) -> Refuse | None:
    """Who may act on the pending confirmed commit (§8.4.1): the issuing
    session for a non-persistent one, anyone with the token for a persistent one."""
    if persist_id is not None:
        if state is None or state.persist is None or state.persist != persist_id:
            return _error(
                "invalid-value",
                f'persist-id "{persist_id}" matches no pending persistent confirmed commit',
                "persist-id",
            )
        return None
    if state is None:
        return None
    if state.persist is not None:
        return _error(
            "missing-element",
            "a persistent confirmed commit is pending: give its persist-id",
            "persist-id",
        )
    if state.owner != sid:
        return _error(
            "in-use",
            f"session {state.owner} has a confirmed commit pending; "
            "only that session may commit or cancel it",
            "commit",
            session_id=str(state.owner),
        )
    return None


def commit(
    state: Pending | None, sid: int, request: CommitRequest, running: Node, now: float
) -> Decision:
    """A <commit>: confirmed (start or extend) or confirming/plain."""
    if not request.confirmed:
        if request.persist is not None:
            return _error("invalid-value", "persist is only allowed with <confirmed/>", "persist")
        if request.timeout is not None:
            return _error(
                "invalid-value",
                "confirm-timeout is only allowed with <confirmed/>",
                "confirm-timeout",
            )
    refused = _check_persist_id(state, sid, request.persist_id)
    if refused is not None:
        return refused
    if not request.confirmed:
        return Apply(None)  # a plain commit confirms whatever is pending
    deadline = now + (request.timeout or DEFAULT_TIMEOUT)
    if state is None:
        return Apply(Pending(running, sid, request.persist, deadline))
    # a follow-up confirmed commit: new changes, a new timer, the same rollback
    # point; a persistent one stays persistent with its token unless a new
    # token is given
    persist = request.persist if request.persist is not None else state.persist
    return Apply(replace(state, owner=sid, persist=persist, deadline=deadline))


def cancel(state: Pending | None, sid: int, persist_id: str | None) -> Decision:
    """<cancel-commit>: roll back at once (§8.4.4.1)."""
    if state is None and persist_id is None:
        return _error("operation-failed", "no confirmed commit is pending", "cancel-commit")
    refused = _check_persist_id(state, sid, persist_id)
    if refused is not None:
        return refused
    assert state is not None
    return Rollback(state.rollback)


def session_ended(state: Pending | None, sid: int) -> Decision:
    """The session that issued a non-persistent confirmed commit is gone:
    roll back (§8.4.1).  A persistent one outlives every session."""
    if state is not None and state.persist is None and state.owner == sid:
        return Rollback(state.rollback)
    return Nothing()


def expired(state: Pending | None, now: float) -> Decision:
    """The timer fired: roll back if the deadline has really passed (the
    timer may have been re-armed, or the wall clock moved, meanwhile)."""
    if state is not None and now >= state.deadline:
        return Rollback(state.rollback)
    return Nothing()
