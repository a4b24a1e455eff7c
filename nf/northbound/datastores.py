"""running and candidate, locks, and the commit path (RFC 6241 §7, §8.3).

One ``Datastores`` object owns the configuration state.  It lives on the
event loop: NETCONF session threads call its coroutines through the portal,
so its fields are only ever touched by one thread and operations are
serialised by ``_commit_lock`` where they await.  CPU-heavy pure work
(edit, validate, diff) runs in a worker thread so relays keep moving while a
1000-channel commit validates.

Every change to running goes the same way: validate the whole new
datastore, diff against running, ``runtime.prepare`` (which may fail and
then has released everything), ``apply``, and only then swap ``running``.
A failure anywhere leaves running, the runtime and every session as they
were.

Confirmed commit (RFC 6241 §8.4): the decisions come from the pure state
machine in ``confirmed.py``; this module carries them out under the commit
lock, so a decision and the change of running it asks for are one step.  A
rollback (timeout, cancel-commit, loss of the issuing session) is just
another change of running, back to the configuration of before the first
confirmed commit, through the same validate/prepare/apply path, so running
and the runtime cannot disagree; if the runtime refuses it (say a serial
port was taken meanwhile), running stays as it is, the error is logged and
the rollback is retried after ``ROLLBACK_RETRY`` seconds.  While a confirmed
commit is pending, edits of the candidate, commits by the owner (or with
the persist-id), edit-config and copy-config on running all stay allowed:
§8.4.1 does not restrict them, it warns that a rollback then "inadvertently
alters or removes" those changes of running and asks clients to lock.  We
follow it: the rollback restores running exactly as it was before the
first confirmed commit.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import anyio
from anyio import TASK_STATUS_IGNORED, to_thread
from anyio.abc import TaskGroup, TaskStatus
from lxml import etree

from nf import rfc3339
from nf.config.codec import Documents
from nf.config.diff import Change, diff
from nf.config.edit import edit_partial
from nf.config.errors import ConfigError
from nf.config.model import from_tree, update
from nf.config.tree import ListNode, Node
from nf.config.validate import Instance, check, check_syntax
from nf.model import RelayConfig
from nf.northbound import confirmed as cc
from nf.northbound.operational import fault_error, state_tree
from nf.northbound.startup import ConfirmedCommitFile, SavedCommit, StartupFile
from nf.runtime.transaction import Delta, PrepareError, Runtime
from nf.schema import MAIN_MODULE, SchemaIndex

log = logging.getLogger(__name__)

T = TypeVar("T")
INLINE_SECONDS = 0.002
"""Work shorter than this runs on the loop: a worker-thread hop costs ~0.1 ms."""
INLINE_ELEMENTS = 200
"""A <config> with more elements is edited in a worker thread."""
DATASTORES = ("running", "candidate")
"""What edit-config can target."""
ALL_DATASTORES = ("running", "candidate", "startup")
"""What can be read, copied, locked (startup only with a startup file)."""
TEST_OPTIONS = frozenset({"test-then-set", "set", "test-only"})
ERROR_OPTIONS = frozenset({"stop-on-error", "continue-on-error", "rollback-on-error"})
ROLLBACK_RETRY = 10.0
"""Seconds before a refused confirmed-commit rollback is tried again."""


Build = Callable[[Node], Awaitable[tuple[Node, list[ConfigError]]]]
Authorize = Callable[[Node, Node], list[ConfigError]]
"""Access control of a change (old tree, new tree) -> errors; None: unrestricted.
Supplied by the NETCONF layer (NACM) per request, so this module knows no users."""
_TEST_ONLY = ConfigError("ok", "test-only: stop before any change")
"""Marker that makes _change_running stop after validation; never reported."""


def _protocol(tag: str, message: str, **info: str) -> ConfigError:
    return ConfigError(
        tag, message, type="protocol", info=tuple((k.replace("_", "-"), v) for k, v in info.items())
    )


def _tell(listener: Callable[..., None] | None, *args: object) -> None:
    """Report something that has happened to ``listener`` (the daemon's
    notifications); a failing listener must not turn an applied change into
    an error."""
    if listener is None:
        return
    try:
        listener(*args)
    except Exception:
        log.exception("listener %r failed", listener)


def _entries(tree: Node) -> int:
    """The size of a configuration, cheaply: the entries of the lists of its
    top-level containers (channels, serial ports, NACM rule lists)."""
    total = 0
    for _, top in tree.items():
        if isinstance(top, Node):
            total += sum(len(child) for _, child in top.items() if isinstance(child, ListNode))
    return total


async def _tree(tree: Node) -> tuple[Node, list[ConfigError]]:
    return tree, []


def delta(changes: Sequence[Change], old: RelayConfig, new: RelayConfig, ns: str) -> Delta:
    """The relay entries ``changes`` touch, as the data plane takes them.
    Changes of other modules (NACM) relay nothing; a change that is not one
    serial port or channel (the top container itself) is compared whole."""
    ports: set[str] = set()
    channels: set[str] = set()
    for change in changes:
        if change.schema.namespace != ns:
            continue
        if change.kind == "serial-port" and change.key:
            ports.add(change.name)
        elif change.kind == "channel" and change.key:
            channels.add(change.name)
        else:
            return Delta.between(old, new)
    return Delta(
        serial_ports={name: new.serial_ports.get(name) for name in ports},
        channels={name: new.channels.get(name) for name in channels},
    )




@dataclass
class CommitResult:
    """What a change of running did, for notifications and logs."""

    errors: list[ConfigError] = field(default_factory=list)
    changed: int = 0


class Datastores:
    """The configuration datastores of one daemon."""

    def __init__(
        self,
        schema: SchemaIndex,
        runtime: Runtime,
        running: Node,
        startup: StartupFile | None = None,
        startup_tree: Node | None = None,
        confirmed_file: ConfirmedCommitFile | None = None,
    ) -> None:
        self.schema = schema
        self.runtime = runtime
        self.startup_file = startup
        self.startup: Node | None = startup_tree
        """The startup datastore; None when there is no startup file."""
        self.running = running
        self.candidate = running
        self.running_model: RelayConfig = from_tree(running, schema)
        self.locks: dict[str, int] = {}
        self.lock_times: dict[str, str] = {}
        self._commit_lock = anyio.Lock()
        self._documents = Documents(schema)
        """running as the data plane keeps it (one entry re-rendered per change)"""
        self._checked: tuple[Node, list[ConfigError], Instance] | None = None
        self._inline = False
        self._inline_entries = 0
        """List entries of the tree whose quick validation allowed inline work."""
        self.is_live: Callable[[int], bool] = lambda _sid: True
        """Set by the server: a killed session's late rpc must not take a lock."""
        self.pending: cc.Pending | None = None
        """The confirmed commit waiting for confirmation, if any."""
        self.confirmed_file = confirmed_file
        self.clock: Callable[[], float] = time.time
        """Wall clock: deadlines are saved to disk as wall-clock time."""
        self._timers: TaskGroup | None = None
        self._timer: anyio.CancelScope | None = None
        self.on_confirm_event: Callable[[str, int, int | None], None] | None = None
        """Called with (confirm-event, session, timeout) as a confirmed commit
        starts, is extended, completes, is cancelled or times out: the
        daemon publishes netconf-confirmed-commit (RFC 6470 §2.4)."""
        self.on_config_change: Callable[[int, Sequence[Change], str], None] | None = None
        """Called after every change of running or startup with the session
        that made it (0: the server, at boot), the changed entries and the
        datastore: the daemon publishes netconf-config-change (RFC 6470)."""

    # -- helpers -------------------------------------------------------------
    @property
    def candidate_modified(self) -> bool:
        return self.candidate is not self.running and self.candidate != self.running

    def tree(self, name: str) -> Node:
        if name == "startup":
            return self.startup if self.startup is not None else Node()
        return self.running if name == "running" else self.candidate

    def known(self, name: str) -> bool:
        return name in DATASTORES or (name == "startup" and self.startup_file is not None)

    def _unknown_datastore(self, name: str, element: str) -> ConfigError:
        return ConfigError(
            "invalid-value",
            f'datastore "{name}" is not supported here (running, candidate)',
            type="protocol",
            info=(("bad-element", element),),
        )

    def _locked_by_other(self, sid: int, name: str) -> ConfigError | None:
        holder = self.locks.get(name)
        if holder is not None and holder != sid:
            return _protocol(
                "in-use",
                f"the {name} datastore is locked by session {holder}",
                session_id=str(holder),
            )
        return None

    async def _work(self, func: Callable[..., T], *args: object) -> T:
        """Run pure CPU work: in a worker thread when it is big enough to
        stall the relays, inline when the thread hop would cost more than
        the work.  Inline only while the last validation was quick and
        every argument is about as small as what it validated: a request
        that brings a large tree or a large <config> never runs on the loop,
        however fast the previous one was."""
        if self._inline and all(self._small(arg) for arg in args):
            return func(*args)
        return await to_thread.run_sync(func, *args)

    def _small(self, arg: object) -> bool:
        if isinstance(arg, Node):
            return _entries(arg) <= 2 * self._inline_entries + 16
        if isinstance(arg, etree._Element):
            # at most this many elements, found without walking a big one
            return sum(1 for _ in itertools.islice(arg.iter(), INLINE_ELEMENTS + 1)) <= (
                INLINE_ELEMENTS
            )
        return True

    async def _check(self, tree: Node) -> tuple[list[ConfigError], Instance]:
        """Validate, remembering the last result: trees are immutable, so the
        candidate validated by edit-config need not be validated again by
        commit."""
        cached = self._checked
        if cached is not None and cached[0] is tree:
            return cached[1], cached[2]
        started = time.perf_counter()
        errors, instance = await self._work(check, tree, self.schema)
        self._inline = time.perf_counter() - started < INLINE_SECONDS
        self._inline_entries = _entries(tree)
        self._checked = (tree, errors, instance)
        return errors, instance

    async def _validate(self, tree: Node) -> list[ConfigError]:
        return (await self._check(tree))[0]

    async def _change_running(
        self, build: Build, sid: int = 0, boot: bool = False
    ) -> list[ConfigError]:
        """Build a new running from the current one, validate it and make it
        live through the runtime; on any error change nothing.

        ``build`` runs under the commit lock, so it always starts from the
        running it replaces and concurrent commits cannot lose each other's
        changes.
        """
        async with self._commit_lock:
            return await self._change_locked(build, sid, boot)

    async def _change_locked(
        self, build: Build, sid: int = 0, boot: bool = False
    ) -> list[ConfigError]:
        """_change_running for a caller that holds the commit lock."""
        old = self.running
        new, errors = await build(old)
        if errors:
            return errors
        errors, instance = await self._check(new)
        if errors:
            return errors
        changes = await self._work(diff, old, new, self.schema)
        if not changes and not boot:  # at boot the data plane gets the document
            self._swap(old, new, self.running_model)
            return []
        new_model = await self._work(update, self.running_model, changes, instance, self.schema)
        ns = self.schema.modules[MAIN_MODULE].namespace
        change = delta(changes, self.running_model, new_model, ns)
        xml = await self._work(self._documents.render, new)
        try:
            transaction = await self.runtime.prepare(change, xml, boot)
        except PrepareError as exc:
            log.warning("commit refused by the runtime: %s", exc)
            return [fault_error(f) for f in exc.faults]
        await transaction.apply()
        self._swap(old, new, new_model)
        log.info("running changed: %d entries", len(changes))
        self._changed(sid, changes)
        return []

    def _changed(self, sid: int, changes: Sequence[Change], datastore: str = "running") -> None:
        if changes:
            _tell(self.on_config_change, sid, changes, datastore)

    async def _authorized(
        self, authorize: Authorize | None, old: Node, new: Node
    ) -> list[ConfigError]:
        """Errors of ``authorize`` for changing ``old`` into ``new``; run
        beside the other pure work (it walks every changed node)."""
        if authorize is None or old is new:
            return []
        return await self._work(authorize, old, new)

    def _confirm_event(self, event: str, sid: int, timeout: int | None = None) -> None:
        _tell(self.on_confirm_event, event, sid, timeout)

    async def _to_running(
        self, tree: Node, sid: int = 0, authorize: Authorize | None = None, boot: bool = False
    ) -> list[ConfigError]:
        async def build(old: Node) -> tuple[Node, list[ConfigError]]:
            return tree, await self._authorized(authorize, old, tree)

        return await self._change_running(build, sid, boot)

    async def boot(self, tree: Node) -> list[ConfigError]:
        """Make ``tree`` running at boot (a missing serial device is then
        retried by its channel rather than refusing the boot: SPEC §3)."""
        return await self._to_running(tree, boot=True)

    def _swap(self, old: Node, new: Node, model: RelayConfig) -> None:
        follows = not self.candidate_modified or self.candidate is old
        self.running = new
        self.running_model = model
        if follows:  # an unmodified candidate tracks running (RFC 6241 §8.3.1)
            self.candidate = new

    # -- operations ------------------------------------------------------------
    async def edit_config(
        self,
        sid: int,
        target: str,
        config: etree._Element,
        default_operation: str = "merge",
        test_option: str = "test-then-set",
        error_option: str = "stop-on-error",
        authorize: Authorize | None = None,
    ) -> list[ConfigError]:
        if target not in DATASTORES:
            return [self._unknown_datastore(target, "target")]
        busy = self._locked_by_other(sid, target)
        if busy is not None:
            return [busy]
        if target == "running":
            # running never holds an invalid configuration: test-option "set"
            # is honoured for the candidate only
            skipped: list[ConfigError] = []  # continue-on-error: reported, not fatal

            async def build(base: Node) -> tuple[Node, list[ConfigError]]:
                new, errors = await self._work(
                    edit_partial, base, config, default_operation, self.schema
                )
                if errors and error_option != "continue-on-error":
                    return new, errors
                denied = await self._authorized(authorize, base, new)
                if denied:
                    return new, denied
                skipped.extend(errors)
                if test_option == "test-only":
                    # validate, report, and stop before anything changes
                    return new, await self._validate(new) or [_TEST_ONLY]
                return new, []

            result = await self._change_running(build, sid)
            return skipped + [e for e in result if e is not _TEST_ONLY]
        base = self.candidate
        new, errors = await self._work(edit_partial, base, config, default_operation, self.schema)
        if errors and error_option != "continue-on-error":
            return errors
        denied = await self._authorized(authorize, base, new)
        if denied:
            return denied
        if test_option == "test-only":
            # the client asks whether the result would be valid: all of it
            return errors + await self._validate(new)
        # RFC 7950 §8.3.3: the candidate is validated at <validate> and
        # <commit>; an edit checks the syntax only (§8.3.1, whatever the
        # test-option), so a configuration can be built step by step (a
        # channel before its serial port)
        invalid = await self._work(check_syntax, new, self.schema)
        if invalid:
            return errors + invalid
        if self.candidate is not base:
            # a commit or another edit changed the candidate while we worked
            return await self.edit_config(
                sid, target, config, default_operation, test_option, error_option, authorize
            )
        self.candidate = new
        return errors

    async def commit(
        self,
        sid: int,
        request: cc.CommitRequest | None = None,
        authorize: Authorize | None = None,
    ) -> list[ConfigError]:
        """<commit>, plain, confirming or confirmed (RFC 6241 §8.3.4.1, §8.4.5.1)."""
        request = request or cc.CommitRequest()
        for name in DATASTORES:
            busy = self._locked_by_other(sid, name)
            if busy is not None:
                return [busy]
        if request.confirmed and self._timers is None:
            return [_protocol("operation-failed", "confirmed commit is not available: no timer")]
        if request.confirmed and not self.is_live(sid):
            # a killed session's late rpc: its end has been handled already,
            # nothing would ever roll back a commit bound to it
            return [_protocol("operation-failed", f"session {sid} is closed")]

        async def build(old: Node) -> tuple[Node, list[ConfigError]]:
            # the candidate as it is when the lock is ours; RFC 8341 §3.4.5:
            # the committing user needs write access to exactly the nodes
            # of running that change
            new = self.candidate
            return new, await self._authorized(authorize, old, new)

        async with self._commit_lock:
            decision = cc.commit(self.pending, sid, request, self.running, self.clock())
            if isinstance(decision, cc.Refuse):
                return [decision.error]
            assert isinstance(decision, cc.Apply)
            if decision.pending is not None:
                # on disk before running changes: whenever running holds an
                # unconfirmed configuration, a restart finds the way back
                await self._save_state(decision.pending)
            errors = await self._change_locked(build, sid)
            if errors:
                if decision.pending is not None:
                    await self._save_state(self.pending)  # as it was
                return errors
            self.candidate = self.running
            before = self.pending
            await self._adopt(decision.pending)
            if decision.pending is not None:
                timeout = request.timeout or cc.DEFAULT_TIMEOUT
                self._confirm_event("extend" if before else "start", sid, timeout)
            elif before is not None:
                self._confirm_event("complete", sid)
            return []

    async def cancel_commit(self, sid: int, persist_id: str | None) -> list[ConfigError]:
        """<cancel-commit> (RFC 6241 §8.4.4.1): roll back at once."""
        busy = self._locked_by_other(sid, "running")
        if busy is not None:
            return [busy]
        async with self._commit_lock:
            decision = cc.cancel(self.pending, sid, persist_id)
            if isinstance(decision, cc.Refuse):
                return [decision.error]
            assert isinstance(decision, cc.Rollback)
            errors = await self._rollback(
                decision.to, f"cancel-commit by session {sid}", retry=False, sid=sid
            )
            if not errors:
                self._confirm_event("cancel", sid)
            return errors

    # -- confirmed commit: state, timer, rollback ------------------------------------
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

    async def resume(self, saved: SavedCommit) -> None:
        """Take over a confirmed commit that a control plane which has died
        left pending (its file), without changing running: the data plane
        still runs the unconfirmed configuration.  A persistent one keeps
        its deadline (``run`` arms the timer, a deadline already past rolls
        back at once); a non-persistent one was bound to a session of the
        dead control plane, which has ended, so it rolls back now (RFC 6241
        §8.4.1), as it would have had that session ended normally."""
        self.pending = cc.Pending(saved.rollback, saved.owner, saved.persist, saved.deadline)
        self._arm()
        if saved.persist is None:
            await self.session_ended(saved.owner)

    async def _save_state(self, pending: cc.Pending | None) -> None:
        file = self.confirmed_file
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
            await self._save_state(None)
        self._arm()

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
            async with self._commit_lock:
                # decided again under the lock: an extend may have come first
                decision = cc.expired(self.pending, self.clock())
                if isinstance(decision, cc.Rollback) and not await self._rollback(
                    decision.to, "confirm-timeout expired", retry=True
                ):
                    self._confirm_event("timeout", 0)

    async def _rollback(self, to: Node, why: str, retry: bool, sid: int = 0) -> list[ConfigError]:
        """Change running back to ``to``; the caller holds the commit lock.

        ``sid`` is who netconf-config-change names: the session of a
        cancel-commit, or 0 (the server) for a timeout or a session's end."""
        errors = await self._change_locked(lambda _old: _tree(to), sid)
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
            await self._adopt_retry()
        return errors

    async def _adopt_retry(self) -> None:
        assert self.pending is not None
        pending = replace(self.pending, deadline=self.clock() + ROLLBACK_RETRY)
        await self._save_state(pending)
        await self._adopt(pending)

    async def discard_changes(self, sid: int) -> list[ConfigError]:
        busy = self._locked_by_other(sid, "candidate")
        if busy is not None:
            return [busy]
        self.candidate = self.running
        return []

    async def validate_source(self, source: str | Node) -> list[ConfigError]:
        if isinstance(source, Node):
            return await self._validate(source)
        if not self.known(source):
            return [self._unknown_datastore(source, "source")]
        return await self._validate(self.tree(source))

    async def copy_config(
        self, sid: int, source: str | Node, target: str, authorize: Authorize | None = None
    ) -> list[ConfigError]:
        if not self.known(target):
            return [self._unknown_datastore(target, "target")]
        if isinstance(source, str):
            if not self.known(source):
                return [self._unknown_datastore(source, "source")]
            if source == target:
                return [
                    ConfigError(
                        "invalid-value",
                        "source and target are the same datastore",
                        type="protocol",
                        info=(("bad-element", "target"),),
                    )
                ]
            tree = self.tree(source)
        else:
            tree = source
        busy = self._locked_by_other(sid, target)
        if busy is not None:
            return [busy]
        if target == "running":
            return await self._to_running(tree, sid, authorize)
        denied = await self._authorized(authorize, self.tree(target), tree)
        if denied:
            return denied
        if target == "startup":
            errors = await self._validate(tree)  # the daemon must be able to boot from it
            if errors:
                return errors
            assert self.startup_file is not None
            await to_thread.run_sync(self.startup_file.save, tree)
            old, self.startup = self.startup, tree
            self._changed(sid, await self._work(diff, old or Node(), tree, self.schema), "startup")
            log.info("startup saved to %s", self.startup_file.path)
            return []
        self.candidate = tree
        return []

    async def delete_config(
        self, sid: int, target: str, authorize: Authorize | None = None
    ) -> list[ConfigError]:
        if target == "startup" and self.startup_file is not None:
            busy = self._locked_by_other(sid, target)
            if busy is not None:
                return [busy]
            denied = await self._authorized(authorize, self.tree(target), Node())
            if denied:
                return denied
            await to_thread.run_sync(self.startup_file.delete)
            old, self.startup = self.startup, None
            self._changed(
                sid, await self._work(diff, old or Node(), Node(), self.schema), "startup"
            )
            return []
        if target in DATASTORES:
            return [
                ConfigError(
                    "operation-not-supported",
                    f"the {target} datastore cannot be deleted",
                    type="protocol",
                    info=(("bad-element", "target"),),
                )
            ]
        return [self._unknown_datastore(target, "target")]

    # -- locks (RFC 6241 §7.5, §7.6, §8.3.5) ------------------------------------
    async def lock(self, sid: int, target: str) -> list[ConfigError]:
        if not self.known(target):
            return [self._unknown_datastore(target, "target")]
        if not self.is_live(sid):
            return [_protocol("operation-failed", f"session {sid} is closed")]
        holder = self.locks.get(target)
        if holder is not None:
            return [
                _protocol(
                    "lock-denied",
                    f"the {target} datastore is already locked by session {holder}",
                    session_id=str(holder),
                )
            ]
        if target == "candidate" and self.candidate_modified:
            return [
                _protocol(
                    "lock-denied",
                    "the candidate has uncommitted changes; commit or discard them first",
                    session_id="0",
                )
            ]
        self.locks[target] = sid
        self.lock_times[target] = rfc3339.now(micro=False)
        return []

    async def unlock(self, sid: int, target: str) -> list[ConfigError]:
        if not self.known(target):
            return [self._unknown_datastore(target, "target")]
        holder = self.locks.get(target)
        if holder is None:
            return [_protocol("operation-failed", f"the {target} datastore is not locked")]
        if holder != sid:
            return [
                _protocol(
                    "operation-failed",
                    f"the {target} lock is held by session {holder}, not by this session",
                    session_id=str(holder),
                )
            ]
        self._release(sid, target)
        return []

    def _release(self, sid: int, target: str) -> None:
        del self.locks[target]
        self.lock_times.pop(target, None)
        if target == "candidate":
            # RFC 6241 §8.3.5.2: releasing the candidate lock discards the
            # uncommitted changes of the session that held it
            self.candidate = self.running
        log.debug("session %d released the %s lock", sid, target)

    async def session_ended(self, sid: int) -> None:
        """Release the locks of a closed, lost or killed session, and roll back
        its non-persistent confirmed commit (RFC 6241 §8.4.1)."""
        for target, holder in list(self.locks.items()):
            if holder == sid:
                self._release(sid, target)
        if self.pending is None or self.pending.owner != sid:
            return
        async with self._commit_lock:
            decision = cc.session_ended(self.pending, sid)
            if isinstance(decision, cc.Rollback) and not await self._rollback(
                decision.to, f"session {sid} ended", retry=True
            ):
                self._confirm_event("cancel", sid)

    async def lock_info(self) -> dict[str, tuple[int, str]]:
        """datastore -> (holder session-id, locked-time), for /netconf-state."""
        return {name: (sid, self.lock_times.get(name, "")) for name, sid in self.locks.items()}

    def names(self) -> list[str]:
        return [n for n in ALL_DATASTORES if self.known(n)]

    async def clear_counters(self, channel: str | None) -> None:
        await self.runtime.clear_counters(channel)

    async def snapshot(self, name: str, with_state: bool) -> tuple[Node, Node | None]:
        """A datastore tree and, for <get>, the operational state, read together."""
        tree = self.tree(name)
        if not with_state:
            return tree, None
        return tree, state_tree(await self.runtime.snapshot(), self.running_model, self.schema)
