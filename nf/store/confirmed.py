"""<commit> and confirmed commit (RFC 6241 §8.3.4, §8.4): the timer and the rollback.

The decisions come from the pure state machine in ``confirmed_state.py``;
this object carries them out under the engine's commit lock, so a decision
and the change of running it asks for are one step.  The state file of a
pending confirmed commit is written once the change is prepared and
certain to apply (the engine's ``ready``): whenever running holds an
unconfirmed configuration, a restart finds the way back.

A rollback (timeout, cancel-commit, loss of the issuing session) is just
another change of running, back to the configuration of before the first
confirmed commit, through the engine, so running and the runtime cannot
disagree; if the runtime refuses it (say a serial port was taken
meanwhile), running stays as it is, the error is logged and the rollback
is retried after ``ROLLBACK_RETRY`` seconds.  While a confirmed commit is
pending, edits of the candidate, commits by the owner (or with the
persist-id), edit-config and copy-config on running all stay allowed:
§8.4.1 does not restrict them, it warns that a rollback then
"inadvertently alters or removes" those changes of running and asks
clients to lock.  We follow it: the rollback restores running exactly as
it was before the first confirmed commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import anyio
from anyio import TASK_STATUS_IGNORED, to_thread
from anyio.abc import TaskGroup, TaskStatus

from nf.config.errors import ConfigError
from nf.config.tree import Node
from nf.northbound.startup import ConfirmedCommitFile, SavedCommit
from nf.store import confirmed_state as cc
from nf.store.candidate import Candidate
from nf.store.engine import Authorize, Engine, Exclusive, authorized, replace_with
from nf.store.locks import always_live, protocol_error

log = logging.getLogger(__name__)

ROLLBACK_RETRY = 10.0
"""Seconds before a refused confirmed-commit rollback is tried again."""

ConfirmEvents = Callable[[str, int, int | None], None]
"""Told (confirm-event, session, timeout) as a confirmed commit starts, is
extended, completes, is cancelled or times out: the daemon publishes
netconf-confirmed-commit (RFC 6470 §2.4)."""


class ConfirmedCommit:
    """The commits of the candidate to running, and the one pending confirmed commit."""

    def __init__(
        self,
        engine: Engine,
        candidate: Candidate,
        file: ConfirmedCommitFile | None = None,
        events: ConfirmEvents | None = None,
        is_live: Callable[[int], bool] = always_live,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.candidate = candidate
        self.file = file
        self.events = events
        self.is_live = is_live
        """A killed session's late confirmed commit must be refused: its end
        has been handled already, nothing would ever roll it back."""
        self.clock = clock
        """Wall clock: deadlines are saved to disk as wall-clock time."""
        self.pending: cc.Pending | None = None
        """The confirmed commit waiting for confirmation, if any."""
        self._timers: TaskGroup | None = None
        self._timer: anyio.CancelScope | None = None

    # -- operations --------------------------------------------------------------------
    async def commit(
        self, sid: int, request: cc.CommitRequest, authorize: Authorize | None = None
    ) -> list[ConfigError]:
        """<commit>, plain, confirming or confirmed (RFC 6241 §8.3.4.1, §8.4.5.1)."""
        if request.confirmed and self._timers is None:
            return [
                protocol_error("operation-failed", "confirmed commit is not available: no timer")
            ]
        if request.confirmed and not self.is_live(sid):
            return [protocol_error("operation-failed", f"session {sid} is closed")]

        async def build(old: Node) -> tuple[Node, list[ConfigError]]:
            # the candidate as it is when the lock is ours; RFC 8341 §3.4.5:
            # the committing user needs write access to exactly the nodes
            # of running that change
            new = self.candidate.tree
            return new, await authorized(self.engine.work, authorize, old, new)

        async with self.engine.exclusive() as held:
            decision = cc.commit(self.pending, sid, request, self.engine.running, self.clock())
            if isinstance(decision, cc.Refuse):
                return [decision.error]
            assert isinstance(decision, cc.Apply)
            pending = decision.pending

            async def save() -> None:
                assert pending is not None
                await self._save(pending)

            errors = await self.engine.change(
                build, sid, ready=None if pending is None else save, held=held
            )
            if errors:
                return errors
            self.candidate.tree = self.engine.running
            before = self.pending
            await self._adopt(pending)
            if pending is not None:
                timeout = request.timeout or cc.DEFAULT_TIMEOUT
                self._tell("extend" if before else "start", sid, timeout)
            elif before is not None:
                self._tell("complete", sid)
            return []

    async def cancel(self, sid: int, persist_id: str | None) -> list[ConfigError]:
        """<cancel-commit> (RFC 6241 §8.4.4.1): roll back at once."""
        async with self.engine.exclusive() as held:
            decision = cc.cancel(self.pending, sid, persist_id)
            if isinstance(decision, cc.Refuse):
                return [decision.error]
            assert isinstance(decision, cc.Rollback)
            errors = await self._rollback(
                held, decision.to, f"cancel-commit by session {sid}", retry=False, sid=sid
            )
            if not errors:
                self._tell("cancel", sid)
            return errors

    async def session_ended(self, sid: int) -> None:
        """Roll back the non-persistent confirmed commit of a session that is
        gone (RFC 6241 §8.4.1)."""
        if self.pending is None or self.pending.owner != sid:
            return
        async with self.engine.exclusive() as held:
            decision = cc.session_ended(self.pending, sid)
            if isinstance(decision, cc.Rollback) and not await self._rollback(
                held, decision.to, f"session {sid} ended", retry=True
            ):
                self._tell("cancel", sid)

    def resume(self, saved: SavedCommit) -> None:
        """Take up a confirmed commit that was pending when the control plane
        stopped: running (as the engine was given it) is the unconfirmed
        configuration and ``saved`` is what its file holds.  Nothing is
        applied and the file is left as it is; the timer runs to the saved
        deadline (at once if it has passed) from when ``run`` runs.  A
        non-persistent one whose session is gone is the caller's to end
        (``session_ended(saved.owner)``).  Call it on the event loop."""
        self.pending = cc.Pending(saved.rollback, saved.owner, saved.persist, saved.deadline)
        self._arm()

    # -- the timer ---------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """Own the confirmed-commit timer for as long as the daemon runs;
        cancelling this task stops the timer (never halfway through a rollback)."""
        async with anyio.create_task_group() as tg:
            self._timers = tg
            self._arm()
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._timers = None

    def _arm(self) -> None:
        """(Re)start the timer for the pending confirmed commit, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pending is None or self._timers is None:
            return
        scope = anyio.CancelScope()
        self._timer = scope
        self._timers.start_soon(self._expire, scope)

    async def _expire(self, scope: anyio.CancelScope) -> None:
        with scope:
            while self.pending is not None:
                delay = self.pending.deadline - self.clock()
                if delay <= 0:
                    break
                await anyio.sleep(delay)
        if scope.cancel_called or self.pending is None:
            return  # re-armed, confirmed or cancelled meanwhile
        with anyio.CancelScope(shield=True):
            async with self.engine.exclusive() as held:
                # decided again under the lock: an extend may have come first
                decision = cc.expired(self.pending, self.clock())
                if isinstance(decision, cc.Rollback) and not await self._rollback(
                    held, decision.to, "confirm-timeout expired", retry=True
                ):
                    self._tell("timeout", 0)

    # -- state -------------------------------------------------------------------------
    async def _rollback(
        self, held: Exclusive, to: Node, why: str, retry: bool, sid: int = 0
    ) -> list[ConfigError]:
        """Change running back to ``to``.

        ``sid`` is who netconf-config-change names: the session of a
        cancel-commit, or 0 (the server) for a timeout or a session's end."""
        errors = await self.engine.change(replace_with(to), sid, held=held)
        if not errors:
            log.warning("confirmed commit rolled back: %s", why)
            await self._adopt(None)
            return []
        log.error(
            "confirmed commit: rollback (%s) refused, running unchanged: %s",
            why,
            "; ".join(str(e) for e in errors),
        )
        if retry and self.pending is not None:
            log.error("confirmed commit: trying the rollback again in %.0f s", ROLLBACK_RETRY)
            pending = replace(self.pending, deadline=self.clock() + ROLLBACK_RETRY)
            await self._save(pending)
            await self._adopt(pending)
        return errors

    async def _save(self, pending: cc.Pending | None) -> None:
        file = self.file
        if file is None:
            return
        if pending is None:
            await to_thread.run_sync(file.delete)
        else:
            saved = SavedCommit(pending.rollback, pending.persist, pending.deadline, pending.owner)
            await to_thread.run_sync(file.save, saved)

    async def _adopt(self, pending: cc.Pending | None) -> None:
        """Make ``pending`` the state (its file is already written) and re-arm the timer."""
        ended = pending is None and self.pending is not None
        self.pending = pending
        if ended:  # a plain commit with nothing pending costs no file system work
            await self._save(None)
        self._arm()

    def _tell(self, event: str, sid: int, timeout: int | None = None) -> None:
        """Report a confirm event; a failing listener must not turn an applied
        change into an error."""
        if self.events is None:
            return
        try:
            self.events(event, sid, timeout)
        except Exception:
            log.exception("confirm-event listener failed")
