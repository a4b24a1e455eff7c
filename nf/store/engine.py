"""The transaction engine: every change of running goes one way.

In the spirit of FRRouting's ``nb_candidate_commit``, one object owns
running (the tree and its typed model), the commit lock and the cache of
the last validation, and ``change`` is the only way running changes:

1. ``build`` makes the new tree from running (under the commit lock, so
   concurrent changes cannot lose each other's work);
2. validate it whole (``dry_run`` stops here: a "test-only" request);
3. diff against running, derive the typed model and the ``Delta``;
4. ``runtime.prepare`` acquires what the delta needs, or fails having
   released it (``PrepareError``: the faults become rpc-errors);
5. ``ready`` (the caller's last word, e.g. the confirmed-commit state file
   written before running holds an unconfirmed configuration) and a
   cancellation check; if either fails, ``abort`` releases exactly what
   prepare acquired (shielded) and running is as before;
6. ``apply`` (shielded: it cannot fail and must not stop halfway), swap
   running, then publish one ``CommitEvent`` to the subscribers given at
   construction.

A failure anywhere leaves running, the runtime and every session as they
were.  The engine runs on the event loop; CPU-heavy pure work (validate,
diff, render) goes through ``Offload``, which decides between a worker
thread and the loop.

The engine does not read running from the runtime: it is constructed with
the running tree it is told is live (empty at boot, or what a restarted
control plane re-read from the data plane), and ``boot`` is the one call
that applies a configuration with ``boot=True``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import anyio
from anyio import to_thread
from anyio.lowlevel import checkpoint_if_cancelled
from lxml import etree

from nf.config.codec import Documents
from nf.config.diff import Change, changed_keys, diff
from nf.config.errors import ConfigError
from nf.config.incremental import Patch, check_change
from nf.config.model import from_tree, update
from nf.config.tree import ListNode, Node
from nf.config.validate import Instance, check
from nf.heap import gc_paused
from nf.model import RelayConfig
from nf.northbound.operational import fault_error
from nf.runtime.transaction import Delta, DocumentMismatch, PrepareError, Runtime
from nf.schema import MAIN_MODULE, SchemaIndex

log = logging.getLogger(__name__)

T = TypeVar("T")
INLINE_SECONDS = 0.002
"""Work shorter than this runs on the loop: a worker-thread hop costs ~0.1 ms."""
INLINE_ELEMENTS = 200
"""A <config> with more elements is edited in a worker thread."""
INLINE_CHANGES = 16
"""Work that costs the change (``Offload.run_change``) runs on the loop
for at most this many changed entries, however big the configuration."""

Build = Callable[[Node], Awaitable[tuple[Node, list[ConfigError]]]]
"""Running -> (the new running, errors): errors refuse the change."""
Ready = Callable[[], Awaitable[None]]
"""Called once the change is certain to apply; raising aborts it."""
Authorize = Callable[[Node, Node], list[ConfigError]]
"""Access control of a change (old tree, new tree) -> errors; None: unrestricted.
Supplied by the NETCONF layer (NACM) per request, so the store knows no users."""


@dataclass(frozen=True)
class CommitEvent:
    """One applied change of a datastore, as subscribers are told of it."""

    sid: int
    """The session that made it; 0: the server (boot, a confirmed-commit timeout)."""
    changes: tuple[Change, ...]
    """The changed entries; empty when the new tree equals the old one."""
    datastore: str
    """"running" or "startup"."""
    before: Node
    after: Node


Subscriber = Callable[[CommitEvent], None]


def publish(subscribers: Iterable[Subscriber], event: CommitEvent) -> None:
    """Tell every subscriber; a failing one must neither turn an applied
    change into an error nor keep the others from hearing of it."""
    for subscriber in subscribers:
        try:
            subscriber(event)
        except Exception:
            log.exception("commit subscriber %r failed", subscriber)


def entries(tree: Node) -> int:
    """The size of a configuration, cheaply: the entries of the lists of its
    top-level containers (channels, serial ports, NACM rule lists)."""
    total = 0
    for _, top in tree.items():
        if isinstance(top, Node):
            total += sum(len(child) for _, child in top.items() if isinstance(child, ListNode))
    return total


class Offload:
    """Where pure CPU work runs: in a worker thread when it is big enough to
    stall the relays, inline when the thread hop would cost more than the
    work.  Inline only while the last validation was quick and every
    argument is about as small as what it validated: a request that brings
    a large tree or a large <config> never runs on the loop, however fast
    the previous one was."""

    def __init__(self) -> None:
        self._inline = False
        self._inline_entries = 0
        """List entries of the tree whose quick validation allowed inline work."""

    async def run(self, func: Callable[..., T], *args: object) -> T:
        if self._inline and all(self._small(arg) for arg in args):
            return func(*args)
        return await to_thread.run_sync(func, *args)

    async def run_change(self, func: Callable[..., T], *args: object, changed: int | None) -> T:
        """``run`` for work that costs the change, not the configuration:
        ``changed`` entries (None: not known to be few).  A few run on the
        loop, since a thread hop (and the GIL handed back and forth) would
        cost more than the work: at 10 000 channels, the four hops of a
        one-leaf commit cost more than the rest of it."""
        if changed is not None and changed <= INLINE_CHANGES:
            return func(*args)
        return await self.run(func, *args)

    @staticmethod
    def elements(config: etree._Element) -> int | None:
        """How many elements ``config`` has, if at most ``INLINE_ELEMENTS``
        (counted without walking a big one): the size of an edit, for
        ``run_change`` (an edit costs its ``<config>``: trees are persistent)."""
        n = sum(1 for _ in itertools.islice(config.iter(), INLINE_ELEMENTS + 1))
        return n if n <= INLINE_ELEMENTS else None

    def measured(self, seconds: float, tree: Node) -> None:
        """A validation of ``tree`` took ``seconds``: the yardstick of what is small."""
        self._inline = seconds < INLINE_SECONDS
        self._inline_entries = entries(tree)

    def _small(self, arg: object) -> bool:
        if isinstance(arg, Node):
            return entries(arg) <= 2 * self._inline_entries + 16
        if isinstance(arg, etree._Element):
            return self.elements(arg) is not None
        return True


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


def replace_with(tree: Node) -> Build:
    """The build that makes ``tree`` running, whatever running is."""

    async def build(_old: Node) -> tuple[Node, list[ConfigError]]:
        return tree, []

    return build


async def authorized(
    work: Offload, authorize: Authorize | None, old: Node, new: Node
) -> list[ConfigError]:
    """Errors of ``authorize`` for changing ``old`` into ``new``; run beside
    the other pure work (it walks every changed node)."""
    if authorize is None or old is new:
        return []
    return await work.run(authorize, old, new)


class Exclusive:
    """The commit lock, held (``Engine.exclusive``): for a caller that decides
    and changes running in one step, such as a confirmed commit, whose
    decision must not go stale while the change is made.  Passed to
    ``Engine.change`` as ``held``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.held = True


class Engine:
    """Running, its model, the commit lock and the validation cache of one daemon."""

    def __init__(
        self,
        schema: SchemaIndex,
        runtime: Runtime,
        running: Node,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        self.schema = schema
        self.runtime = runtime
        self.running = running
        """Immutable; replaced whole by each change (safe to read from any thread)."""
        self.running_model: RelayConfig = from_tree(running, schema)
        self.work = Offload()
        self._documents = Documents(schema)
        """running's document as the data plane keeps it: each change sends
        a patch of it, the changed entries only (nf.runtime.document)"""
        self._document_version: int | None = None
        """The version of running's document the runtime keeps (None: not
        known, as before the first change or after a control-plane restart:
        the next change sends it whole)."""
        self._versions = itertools.count(secrets.randbits(32) + 1)
        self._subscribers = tuple(subscribers)
        self._lock = anyio.Lock()
        self._checked: tuple[Node, list[ConfigError], Instance] | None = None
        self._base: tuple[Node, Instance] | None = None
        """running and its instance document, the base of incremental
        validation (None until a change made running from a validated tree)."""
        self._namespace = schema.modules[MAIN_MODULE].namespace

    # -- validation --------------------------------------------------------------------
    async def check(self, tree: Node, keep_xml: bool = False) -> tuple[list[ConfigError], Instance]:
        """Validate, remembering the last result: trees are immutable, so the
        candidate validated by edit-config need not be validated again by
        commit.  ``keep_xml``: the tree is to run (``Instance.rendered``:
        its entries are not rendered again for the data plane's document)."""
        cached = self._checked
        if cached is not None and cached[0] is tree:
            return cached[1], cached[2]
        started = time.perf_counter()
        errors, instance = await self.work.run(check, tree, self.schema, keep_xml)
        self.work.measured(time.perf_counter() - started, tree)
        self._checked = (tree, errors, instance)
        return errors, instance

    async def validate(self, tree: Node) -> list[ConfigError]:
        return (await self.check(tree))[0]

    # -- changes -----------------------------------------------------------------------
    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[Exclusive]:
        """Hold the commit lock: nothing changes running meanwhile but
        through the ``Exclusive`` yielded."""
        async with self._lock:
            holder = Exclusive(self)
            try:
                yield holder
            finally:
                holder.held = False

    async def change(
        self,
        build: Build,
        sid: int = 0,
        *,
        boot: bool = False,
        dry_run: bool = False,
        ready: Ready | None = None,
        held: Exclusive | None = None,
    ) -> list[ConfigError]:
        """Make ``build(running)`` running, or change nothing and return why.

        ``sid``: who is making the change (0: the server).  ``boot``: the
        boot configuration (the runtime then retries a missing serial
        device instead of refusing, SPEC §3), prepared even when it equals
        running, so that the data plane receives the document.
        ``dry_run``: validate only.  ``ready``: awaited once the change is
        prepared and certain to apply; if it raises, the change is aborted.
        ``held``: the commit lock, if the caller holds it already.
        """
        if held is not None:
            assert held.engine is self and held.held, "the commit lock is not held"
            return await self._change(build, sid, boot, dry_run, ready)
        async with self.exclusive():
            return await self._change(build, sid, boot, dry_run, ready)

    async def boot(self, tree: Node, checked: Instance | None = None) -> list[ConfigError]:
        """Make ``tree`` running at boot (a missing serial device is then
        retried by its channel rather than refusing the boot: SPEC §3).
        ``checked``: ``tree``'s instance document from a validation without
        errors (the boot file was validated as it was read): not done again."""
        if checked is not None:
            self._checked = (tree, [], checked)
        return await self.change(replace_with(tree), boot=True)

    async def _change(
        self, build: Build, sid: int, boot: bool, dry_run: bool, ready: Ready | None
    ) -> list[ConfigError]:
        old = self.running
        new, errors = await build(old)
        if errors:
            return errors
        changed = changed_keys(old, new, self.schema)
        small = changed is not None and changed <= INLINE_CHANGES
        # a big change makes thousands of lasting objects: no full pass meanwhile
        with nullcontext() if small else gc_paused():
            return await self._validated_change(sid, boot, dry_run, ready, old, new, changed)

    async def _validated_change(
        self,
        sid: int,
        boot: bool,
        dry_run: bool,
        ready: Ready | None,
        old: Node,
        new: Node,
        changed: int | None,
    ) -> list[ConfigError]:
        """Steps 2 to 6 for a built ``new``, ``changed_keys(old, new)``."""
        base = self._base if self._base is not None and self._base[0] is old else None
        changes: list[Change] | None = None
        patch: Patch | None = None
        incremental = None
        if base is not None and (self._checked is None or self._checked[0] is not new):
            if self._checked is not None and self._checked[2] is base[1]:
                self._checked = None  # the instance is patched below: no longer that tree's
            # (no Offload.measured: a quick incremental check says nothing of
            # how long a full validation of a tree this big takes)
            work = self.work
            changes = await work.run_change(diff, old, new, self.schema, changed=changed)
            incremental = await work.run_change(
                check_change, base[1], old, new, changes, changed=changed
            )
        if incremental is not None:
            errors, patch = incremental
            instance = base[1] if base is not None else None
            assert instance is not None
        else:
            errors, instance = await self.check(new, keep_xml=True)
        refused: list[ConfigError] | None = errors
        try:
            refused = await self._apply(
                sid, boot, dry_run, ready, old, new, errors, instance, changes, changed
            )
        finally:
            instance.rendered.clear()  # taken by the document, or of no use now
            if patch is not None and refused is not None:
                patch.undo()  # the instance is running's again
        if refused is None:
            self._base = (new, instance)
            return []
        return refused

    async def _apply(
        self,
        sid: int,
        boot: bool,
        dry_run: bool,
        ready: Ready | None,
        old: Node,
        new: Node,
        errors: list[ConfigError],
        instance: Instance,
        changes: list[Change] | None,
        changed: int | None,
    ) -> list[ConfigError] | None:
        """Steps 3 to 6 for a validated ``new``: None once it is running,
        else why not (``errors``, the runtime's refusal, or nothing: dry run).
        ``changed``: ``changed_keys(old, new)``, how the work is placed."""
        if errors or dry_run:
            return errors
        work = self.work
        if changes is None:
            changes = await work.run_change(diff, old, new, self.schema, changed=changed)
        if not changes and not boot:  # at boot the data plane gets the document
            if ready is not None:
                await ready()
            self._swap(sid, changes, old, new, self.running_model)
            return None
        new_model = await work.run_change(
            update, self.running_model, changes, instance, self.schema, changed=changed
        )
        change = delta(changes, self.running_model, new_model, self._namespace)
        version, base = next(self._versions), self._document_version
        rendered = instance.rendered  # what validation rendered: not rendered again
        try:
            document = await work.run_change(
                self._documents.patch,
                new,
                version,
                old,
                changes,
                base,
                rendered,
                changed=changed if base is not None else None,  # else rendered whole
            )
            try:
                transaction = await self.runtime.prepare(change, document, boot)
            except DocumentMismatch as exc:
                log.warning("the runtime keeps another document (%s): sending it whole", exc)
                document = await self.work.run(
                    self._documents.patch, new, version, None, (), None, rendered
                )
                transaction = await self.runtime.prepare(change, document, boot)
        except PrepareError as exc:
            log.warning("commit refused by the runtime: %s", exc)
            return [fault_error(f) for f in exc.faults]
        try:
            if ready is not None:
                await ready()
            await checkpoint_if_cancelled()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await transaction.abort()
            raise
        with anyio.CancelScope(shield=True):
            await transaction.apply()
        self._document_version = version
        self._swap(sid, changes, old, new, new_model)
        log.info("running changed: %d entries", len(changes))
        return None

    def _swap(
        self, sid: int, changes: Sequence[Change], old: Node, new: Node, model: RelayConfig
    ) -> None:
        self.running = new
        self.running_model = model
        publish(self._subscribers, CommitEvent(sid, tuple(changes), "running", old, new))
