"""The datastores of one daemon, as the rpc handlers see them: a facade.

The parts live in ``nf.store``: the transaction engine (running and every
change of it), the candidate, the locks and the confirmed commit.  This
object builds them, keeps the startup datastore, and routes an operation
to the parts it concerns, checking the locks of the datastores it touches
first.  Which datastore names an operation takes and what NETCONF's
test-option and error-option mean are the rpc handlers' rules
(``nf.northbound.rpcs``): here every name is one that exists for the
operation.

It lives on the event loop: NETCONF session threads call its coroutines
through the portal, so its fields are only ever touched by one thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from anyio import TASK_STATUS_IGNORED, to_thread
from anyio.abc import TaskStatus
from lxml import etree

from nf.config.diff import changed_keys, diff
from nf.config.edit import edit_partial
from nf.config.errors import ConfigError
from nf.config.incremental import check_syntax_change
from nf.config.tree import Node
from nf.config.validate import Instance, check_syntax
from nf.model import RelayConfig
from nf.northbound.operational import state_tree
from nf.northbound.selection import Selection
from nf.northbound.startup import ConfirmedCommitFile, StartupFile
from nf.runtime.transaction import Runtime, Snapshot
from nf.schema import SchemaIndex
from nf.store.candidate import Candidate
from nf.store.confirmed import ConfirmedCommit, ConfirmEvents
from nf.store.confirmed_state import CommitRequest
from nf.store.engine import Authorize, CommitEvent, Engine, Subscriber, authorized, publish
from nf.store.locks import Locks, always_live

log = logging.getLogger(__name__)

ALL_DATASTORES = ("running", "candidate", "startup")
"""What can be read, copied, locked (startup only with a startup file)."""


class Datastores:
    """running, candidate and startup of one daemon."""

    def __init__(
        self,
        schema: SchemaIndex,
        runtime: Runtime,
        running: Node,
        startup: StartupFile | None = None,
        startup_tree: Node | None = None,
        confirmed_file: ConfirmedCommitFile | None = None,
        *,
        subscribers: Sequence[Subscriber] = (),
        confirm_events: ConfirmEvents | None = None,
        is_live: Callable[[int], bool] = always_live,
    ) -> None:
        """``running``: the configuration the runtime runs already (empty at
        boot: see ``boot``).  ``subscribers`` hear of every applied change
        of running or startup (the daemon's netconf-config-change);
        ``is_live`` says whether a session still exists."""
        self.schema = schema
        self.candidate = Candidate(running)
        self._subscribers = (self.candidate.follow, *subscribers)
        self.engine = Engine(schema, runtime, running, self._subscribers)
        self.locks = Locks(self.engine, self.candidate, is_live)
        self.confirmed = ConfirmedCommit(
            self.engine, self.candidate, confirmed_file, confirm_events, is_live
        )
        self.startup_file = startup
        self.startup: Node | None = startup_tree
        """The startup datastore; None when there is no startup file."""
        self._syntax_ok: Node = running
        """The last candidate an edit found free of syntax errors.  A
        copy-config into the candidate checks nothing, so an edit checks a
        base in full unless it is this tree or running (valid)."""

    @property
    def running(self) -> Node:
        return self.engine.running

    def tree(self, name: str) -> Node:
        if name == "startup":
            return self.startup if self.startup is not None else Node()
        return self.running if name == "running" else self.candidate.tree

    def config(self, name: str, selection: Selection | None = None) -> Node:
        """A datastore tree, of the ``selection``'s entries only if given.
        Safe from a session's thread without a hop to the loop: trees are
        immutable and each datastore's is swapped by one assignment."""
        tree = self.tree(name)
        return tree if selection is None else selection.restrict(tree, self.schema)

    def known(self, name: str) -> bool:
        return name in ("running", "candidate") or (
            name == "startup" and self.startup_file is not None
        )

    def names(self) -> list[str]:
        return [n for n in ALL_DATASTORES if self.known(n)]

    def nmda_names(self) -> list[str]:
        """Every datastore of RFC 8342 the daemon has, for <get-data> and the
        YANG library: the conventional ones, intended (running itself:
        nothing transforms configuration here) and operational."""
        return [*self.names(), "intended", "operational"]

    async def boot(self, tree: Node, checked: Instance | None = None) -> list[ConfigError]:
        return await self.engine.boot(tree, checked)

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """The confirmed-commit timer, for as long as the daemon runs."""
        await self.confirmed.run(task_status=task_status)

    # -- operations ------------------------------------------------------------------
    async def edit(
        self,
        sid: int,
        target: str,
        config: etree._Element,
        default_operation: str = "merge",
        *,
        partial: bool = False,
        dry_run: bool = False,
        authorize: Authorize | None = None,
    ) -> list[ConfigError]:
        """Edit running or the candidate with a <config>.

        ``partial``: apply what can be applied and report the rest, rather
        than refuse the whole edit.  ``dry_run``: report whether the result
        would be valid (all of it), change nothing."""
        busy = self.locks.busy(sid, target)
        if busy is not None:
            return [busy]
        work = self.engine.work
        if target == "running":
            # running never holds an invalid configuration, whatever the
            # client asked for
            skipped: list[ConfigError] = []  # partial: reported, not fatal

            async def build(base: Node) -> tuple[Node, list[ConfigError]]:
                new, errors = await work.run(
                    edit_partial, base, config, default_operation, self.schema
                )
                if errors and not partial:
                    return new, errors
                denied = await authorized(work, authorize, base, new)
                if denied:
                    return new, denied
                skipped.extend(errors)
                return new, []

            return skipped + await self.engine.change(build, sid, dry_run=dry_run)
        base = self.candidate.tree
        # an edit costs its <config>, whatever the size of the candidate
        new, errors = await work.run_change(
            edit_partial,
            base,
            config,
            default_operation,
            self.schema,
            changed=work.elements(config),
        )
        if errors and not partial:
            return errors
        denied = await authorized(work, authorize, base, new)
        if denied:
            return denied
        if dry_run:
            return errors + await self.engine.validate(new)
        # RFC 7950 §8.3.3: the candidate is validated at <validate> and
        # <commit>; an edit checks the syntax only (§8.3.1), so a
        # configuration can be built step by step (a channel before its
        # serial port)
        if base is self._syntax_ok or base is self.running:
            invalid = await work.run_change(
                check_syntax_change,
                base,
                new,
                self.schema,
                changed=changed_keys(base, new, self.schema),
            )
        else:
            invalid = await work.run(check_syntax, new, self.schema)
        if invalid:
            return errors + invalid
        if self.candidate.tree is not base:
            # a commit or another edit changed the candidate while we worked
            return await self.edit(
                sid,
                target,
                config,
                default_operation,
                partial=partial,
                dry_run=dry_run,
                authorize=authorize,
            )
        self.candidate.tree = self._syntax_ok = new
        return errors

    async def validate(self, source: str | Node) -> list[ConfigError]:
        """<validate> of a datastore or of a tree."""
        return await self.engine.validate(source if isinstance(source, Node) else self.tree(source))

    async def commit(
        self, sid: int, request: CommitRequest, authorize: Authorize | None = None
    ) -> list[ConfigError]:
        for name in ("running", "candidate"):
            busy = self.locks.busy(sid, name)
            if busy is not None:
                return [busy]
        return await self.confirmed.commit(sid, request, authorize)

    async def cancel_commit(self, sid: int, persist_id: str | None) -> list[ConfigError]:
        busy = self.locks.busy(sid, "running")
        if busy is not None:
            return [busy]
        return await self.confirmed.cancel(sid, persist_id)

    async def discard_changes(self, sid: int) -> list[ConfigError]:
        busy = self.locks.busy(sid, "candidate")
        if busy is not None:
            return [busy]
        self.candidate.tree = self.running
        return []

    async def copy(
        self, sid: int, source: str | Node, target: str, authorize: Authorize | None = None
    ) -> list[ConfigError]:
        """Replace ``target`` by ``source`` (a datastore other than the target, or a tree)."""
        tree = self.tree(source) if isinstance(source, str) else source
        busy = self.locks.busy(sid, target)
        if busy is not None:
            return [busy]
        if target == "running":

            async def build(old: Node) -> tuple[Node, list[ConfigError]]:
                return tree, await authorized(self.engine.work, authorize, old, tree)

            return await self.engine.change(build, sid)
        denied = await authorized(self.engine.work, authorize, self.tree(target), tree)
        if denied:
            return denied
        if target == "startup":
            errors = await self.engine.validate(tree)  # the daemon must be able to boot from it
            if errors:
                return errors
            assert self.startup_file is not None
            await to_thread.run_sync(self.startup_file.save, tree)
            await self._startup_changed(sid, tree)
            log.info("startup saved to %s", self.startup_file.path)
            return []
        self.candidate.tree = tree
        return []

    async def delete_startup(
        self, sid: int, authorize: Authorize | None = None
    ) -> list[ConfigError]:
        """<delete-config> of startup (the one datastore that can be deleted)."""
        busy = self.locks.busy(sid, "startup")
        if busy is not None:
            return [busy]
        denied = await authorized(self.engine.work, authorize, self.tree("startup"), Node())
        if denied:
            return denied
        assert self.startup_file is not None
        await to_thread.run_sync(self.startup_file.delete)
        await self._startup_changed(sid, None)
        return []

    async def _startup_changed(self, sid: int, tree: Node | None) -> None:
        old, self.startup = self.startup or Node(), tree
        new = tree or Node()
        changes = await self.engine.work.run(diff, old, new, self.schema)
        publish(self._subscribers, CommitEvent(sid, tuple(changes), "startup", old, new))

    # -- sessions and state ------------------------------------------------------------
    async def session_ended(self, sid: int) -> None:
        """Release the locks of a closed, lost or killed session, and roll back
        its non-persistent confirmed commit (RFC 6241 §8.4.1)."""
        self.locks.session_ended(sid)
        await self.confirmed.session_ended(sid)

    async def clear_counters(self, channel: str | None) -> None:
        await self.engine.runtime.clear_counters(channel)

    async def send_break(self, port: str, duration_ms: int) -> str | None:
        return await self.engine.runtime.send_break(port, duration_ms)

    async def read(
        self, name: str, with_state: bool
    ) -> tuple[Node, Snapshot | None, RelayConfig, dict[str, tuple[int, str]]]:
        """A datastore tree, the data plane's snapshot (for <get>), the
        running model it is rendered against and the locks (for
        /netconf-state), read together: one hop to the event loop for a
        whole <get>, not one per item."""
        engine = self.engine
        model = engine.running_model
        snapshot = await engine.runtime.snapshot() if with_state else None
        return self.tree(name), snapshot, model, self.locks.info()

    async def snapshot(
        self, name: str, with_state: bool, selection: Selection | None = None
    ) -> tuple[Node, Node | None]:
        """A datastore tree and, for <get>, the operational state, read
        together; of the ``selection``'s entries only, if given."""
        tree = self.config(name, selection)
        if not with_state:
            return tree, None
        engine = self.engine
        model = engine.running_model
        channels = None if selection is None else selection.channels_of(model)
        snapshot = await engine.runtime.snapshot(channels)
        return tree, state_tree(snapshot, model, self.schema, selection)
