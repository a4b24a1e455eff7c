"""The transaction engine (nf/store/engine.py) and the small objects on it,
driven directly with a recording runtime: no SSH, no sockets.

What is asserted is the engine's contract: the order validate -> diff ->
prepare -> apply (or abort), that a refused or aborted change leaves
running, the runtime and the subscribers as they were, one event per
applied change, and that construction and ``resume`` never touch the
runtime.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from lxml import etree
from relayhelpers import (
    NC,
    channel_xml,
    config,
    delete_channel_xml,
    listen_xml,
    port_xml,
    server_xml,
)

from nf.config import load_document
from nf.config.edit import edit_partial
from nf.config.errors import ConfigError
from nf.config.model import from_tree
from nf.config.tree import Node
from nf.model import RelayConfig
from nf.northbound.startup import ConfirmedCommitFile, SavedCommit
from nf.runtime.document import Document, DocumentPatch
from nf.runtime.transaction import (
    Delta,
    DocumentMismatch,
    Fault,
    PrepareError,
    Snapshot,
    Transaction,
)
from nf.schema import default_schema
from nf.store.candidate import Candidate
from nf.store.confirmed import ConfirmedCommit
from nf.store.confirmed_state import CommitRequest
from nf.store.engine import Build, CommitEvent, Engine, replace_with
from nf.store.locks import Locks

SCHEMA = default_schema()


def tree(body: str) -> Node:
    parsed, errors = load_document(config(body), SCHEMA)
    assert errors == []
    return parsed


BASE = tree(port_xml("p1", "loop://") + server_xml("c1", "p1", 7001))
TWO = tree(
    port_xml("p1", "loop://")
    + port_xml("p2", "loop://")
    + server_xml("c1", "p1", 7001)
    + server_xml("c2", "p2", 7002)
)
INVALID = tree(server_xml("c1", "nowhere", 7001))  # a channel on a serial port that is not there


class Recorder:
    """A Runtime that records what the engine asks of it, and fails prepare
    on request; it keeps the document as a data plane does."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.prepared: list[tuple[Delta, DocumentPatch, bool]] = []
        self.refuse: PrepareError | None = None
        self.config = RelayConfig({}, {})
        self.document = Document()

    async def prepare(
        self, delta: Delta, document: DocumentPatch, boot: bool = False
    ) -> Transaction:
        self.calls.append("prepare")
        self.prepared.append((delta, document, boot))
        if self.refuse is not None:
            raise self.refuse
        why = self.document.check(document)
        if why is not None:
            raise DocumentMismatch(why)
        runtime = self

        class Prepared:
            async def apply(self) -> None:
                runtime.calls.append("apply")
                runtime.config = delta.applied_to(runtime.config)
                runtime.document.apply(document)

            async def abort(self) -> None:
                runtime.calls.append("abort")

        return Prepared()

    async def running(self) -> tuple[RelayConfig, bytes] | None:
        return None

    async def snapshot(self, channels: frozenset[str] | None = None) -> Snapshot:
        return Snapshot()

    async def clear_counters(self, channel: str | None) -> None:
        del channel

    def add_event_sink(self, sink: object) -> None:
        del sink


def engine(running: Node = BASE) -> tuple[Engine, Recorder, list[CommitEvent]]:
    runtime = Recorder()
    events: list[CommitEvent] = []
    return Engine(SCHEMA, runtime, running, [events.append]), runtime, events


# -- construction and boot ---------------------------------------------------------------------
def test_construction_takes_running_as_live_and_never_calls_the_runtime() -> None:
    """A restarted control plane hands the engine what the data plane runs:
    nothing is applied again, and the next change sends only its own delta."""
    eng, runtime, events = engine(TWO)
    assert runtime.calls == [] and events == []
    assert eng.running is TWO
    assert eng.running_model == from_tree(TWO, SCHEMA)

    async def scenario() -> None:
        changed = tree(
            port_xml("p1", "loop://")
            + port_xml("p2", "loop://")
            + server_xml("c1", "p1", 7001)
            + server_xml("c2", "p2", 7003)
        )
        assert await eng.change(replace_with(changed), 4) == []

    anyio.run(scenario)
    assert runtime.calls == ["prepare", "apply"]
    ((delta, _, boot),) = runtime.prepared
    assert (set(delta.channels), dict(delta.serial_ports), boot) == ({"c2"}, {}, False)
    channel = delta.channels["c2"]
    assert channel is not None and channel.listen_port == 7003


def test_boot_prepares_even_an_empty_configuration() -> None:
    """The data plane must receive the boot document even when there is
    nothing to start: it is what a restarted control plane reads back."""
    eng, runtime, events = engine(Node())

    async def scenario() -> None:
        assert await eng.boot(Node()) == []

    anyio.run(scenario)
    assert runtime.calls == ["prepare", "apply"]
    ((delta, document, boot),) = runtime.prepared
    assert not delta and boot is True and document.base is None
    assert runtime.document.to_bytes().startswith(b"<config")
    assert [(e.sid, list(e.changes), e.datastore) for e in events] == [(0, [], "running")]


def test_boot_applies_with_boot_true_and_a_plain_change_without() -> None:
    eng, runtime, _ = engine(Node())

    async def scenario() -> None:
        assert await eng.boot(BASE) == []
        assert await eng.change(replace_with(TWO)) == []

    anyio.run(scenario)
    assert [boot for _, _, boot in runtime.prepared] == [True, False]
    assert runtime.config == from_tree(TWO, SCHEMA)


def test_a_boot_configuration_validated_as_read_is_not_validated_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``nf run`` validates the file it boots as it reads it (to name the
    file in its error): the engine takes that instance document instead
    of a second validation, seconds at 10 000 channels."""
    from nf.config.validate import check
    from nf.store import engine as engine_module

    checked: list[Node] = []

    def counting(tree: Node, schema: object) -> object:
        checked.append(tree)
        return check(tree, SCHEMA)

    monkeypatch.setattr(engine_module, "check", counting)
    errors, instance = check(TWO, SCHEMA)
    assert errors == []
    eng, runtime, _ = engine(Node())

    async def scenario() -> None:
        assert await eng.boot(TWO, instance) == []
        assert await eng.change(replace_with(BASE)) == []  # and it is the base of the next

    anyio.run(scenario)
    assert TWO not in checked
    assert runtime.config == from_tree(BASE, SCHEMA)


# -- the pipeline -----------------------------------------------------------------------------
def test_an_applied_change_swaps_running_and_publishes_one_event() -> None:
    eng, runtime, events = engine()

    async def scenario() -> None:
        assert await eng.change(replace_with(TWO), 7) == []

    anyio.run(scenario)
    assert runtime.calls == ["prepare", "apply"]
    assert eng.running is TWO and eng.running_model == from_tree(TWO, SCHEMA)
    (event,) = events
    assert (event.sid, event.datastore, event.before, event.after) == (7, "running", BASE, TWO)
    assert sorted((c.kind, c.name, c.op) for c in event.changes) == [
        ("channel", "c2", "create"),
        ("serial-port", "p2", "create"),
    ]
    ((delta, _document, _),) = runtime.prepared
    assert set(delta.channels) == {"c2"} and set(delta.serial_ports) == {"p2"}
    assert b"<name>c2</name>" in runtime.document.to_bytes()


def test_a_change_sends_the_document_as_a_patch_of_the_one_kept() -> None:
    """The first change sends the document whole; the next one only the
    entries it changes, against the version the runtime keeps; the kept
    document is then running's, as if rendered whole."""
    eng, runtime, _ = engine()
    changed = tree(
        port_xml("p1", "loop://")
        + port_xml("p2", "loop://")
        + server_xml("c1", "p1", 7001)
        + server_xml("c2", "p2", 7009)
    )

    async def merge(old: Node) -> tuple[Node, list[ConfigError]]:
        """An edit-config's merge: the lists it changes derive from running's."""
        edit = etree.fromstring(config(server_xml("c2", "p2", 7009)))
        return edit_partial(old, edit, "merge", SCHEMA)

    async def scenario() -> None:
        assert await eng.change(replace_with(TWO)) == []
        assert await eng.change(merge) == []

    anyio.run(scenario)
    (_, first, _), (_, second, _) = runtime.prepared
    assert first.base is None
    assert second.base == first.version != second.version
    assert [(lst.whole, [key for key, _ in lst.entries]) for lst in second.lists] == [
        (False, ["c2"])
    ]
    back, errors = load_document(runtime.document.to_bytes(), SCHEMA)
    assert not errors and back == changed


def test_a_patch_of_another_document_is_sent_again_whole() -> None:
    """A runtime that keeps another document than the engine thinks (it
    should not happen: a bug's safety net) is sent the whole document."""
    eng, runtime, _ = engine()

    async def scenario() -> None:
        assert await eng.change(replace_with(TWO)) == []
        runtime.document = Document()  # lost, as a data plane that restarted empty
        assert await eng.change(replace_with(BASE)) == []

    anyio.run(scenario)
    patches = [document for _, document, _ in runtime.prepared]
    assert [p.base is None for p in patches] == [True, False, True]
    assert runtime.calls == ["prepare", "apply", "prepare", "prepare", "apply"]
    back, errors = load_document(runtime.document.to_bytes(), SCHEMA)
    assert not errors and back == BASE


def test_an_invalid_tree_is_refused_before_the_runtime_hears_of_it() -> None:
    eng, runtime, events = engine()

    async def scenario() -> list[ConfigError]:
        return await eng.change(replace_with(INVALID), 3)

    errors = anyio.run(scenario)
    assert [e.tag for e in errors] == ["data-missing"]
    assert runtime.calls == [] and events == [] and eng.running is BASE


def test_errors_of_the_build_refuse_the_change() -> None:
    eng, runtime, events = engine()
    denied = ConfigError("access-denied", "no")

    async def build(old: Node) -> tuple[Node, list[ConfigError]]:
        assert old is BASE
        return TWO, [denied]

    assert anyio.run(eng.change, build) == [denied]
    assert runtime.calls == [] and events == [] and eng.running is BASE


def test_a_refused_prepare_becomes_rpc_errors_at_the_leaf_at_fault() -> None:
    eng, runtime, events = engine()
    runtime.refuse = PrepareError(
        [Fault("in-use", "channel c2: cannot bind TCP 127.0.0.1:7002", "c2", "listen/port")]
    )

    errors = anyio.run(eng.change, replace_with(TWO))
    assert [(e.tag, e.path, e.message) for e in errors] == [
        (
            "in-use",
            "/soip:serial-over-ip/soip:channel[soip:name='c2']/soip:listen/soip:port",
            "channel c2: cannot bind TCP 127.0.0.1:7002",
        )
    ]
    assert runtime.calls == ["prepare"]  # prepare released what it had: no abort, no apply
    assert events == [] and eng.running is BASE


def test_dry_run_validates_and_changes_nothing() -> None:
    """A "test-only" request: no stop signal dressed as an error, just a
    change that ends after validation."""
    eng, runtime, events = engine()

    async def scenario() -> tuple[list[ConfigError], list[ConfigError]]:
        valid = await eng.change(replace_with(TWO), 1, dry_run=True)
        invalid = await eng.change(replace_with(INVALID), 1, dry_run=True)
        return valid, invalid

    valid, invalid = anyio.run(scenario)
    assert valid == [] and [e.tag for e in invalid] == ["data-missing"]
    assert runtime.calls == [] and events == [] and eng.running is BASE


def test_a_change_to_an_equal_tree_needs_no_runtime() -> None:
    eng, runtime, events = engine()
    same = tree(port_xml("p1", "loop://") + server_xml("c1", "p1", 7001))
    assert same is not BASE and same == BASE

    assert anyio.run(eng.change, replace_with(same)) == []
    assert runtime.calls == []
    assert eng.running is same
    assert [(list(e.changes), e.after) for e in events] == [([], same)]


def test_a_failing_ready_aborts_what_was_prepared() -> None:
    """``ready`` is the caller's last word (the confirmed-commit file is
    written there): if it fails, the prepared resources are released and
    running is as before."""
    eng, runtime, events = engine()

    async def full_disk() -> None:
        raise OSError(28, "No space left on device")

    async def scenario() -> None:
        with pytest.raises(OSError):
            await eng.change(replace_with(TWO), ready=full_disk)

    anyio.run(scenario)
    assert runtime.calls == ["prepare", "abort"]
    assert events == [] and eng.running is BASE and runtime.config == RelayConfig({}, {})


def test_a_change_cancelled_between_prepare_and_apply_is_aborted() -> None:
    eng, runtime, events = engine()

    async def scenario() -> None:
        with anyio.CancelScope() as scope:

            async def cancelled() -> None:
                scope.cancel()  # e.g. the daemon shutting down while a commit is prepared

            await eng.change(replace_with(TWO), ready=cancelled)
            raise AssertionError("the change went on after its cancellation")
        assert scope.cancelled_caught

    anyio.run(scenario)
    assert runtime.calls == ["prepare", "abort"]
    assert events == [] and eng.running is BASE


def test_apply_is_not_cancelled_halfway() -> None:
    """Once apply starts it runs to its end, and running follows it."""
    events: list[CommitEvent] = []
    entered = anyio.Event()

    class Slow(Recorder):
        async def prepare(
            self, delta: Delta, document: DocumentPatch, boot: bool = False
        ) -> Transaction:
            prepared = await super().prepare(delta, document, boot)
            recorder = self

            class Apply:
                async def apply(self) -> None:
                    entered.set()
                    await anyio.sleep(0.2)
                    await prepared.apply()
                    recorder.calls.append("applied")

                async def abort(self) -> None:
                    await prepared.abort()

            return Apply()

    slow = Slow()
    eng = Engine(SCHEMA, slow, BASE, [events.append])

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(eng.change, replace_with(TWO))
            await entered.wait()
            tg.cancel_scope.cancel()

    anyio.run(scenario)
    assert slow.calls == ["prepare", "apply", "applied"]
    assert eng.running is TWO and len(events) == 1


def test_subscribers_hear_once_per_applied_change_and_a_failing_one_hurts_nobody() -> None:
    runtime = Recorder()
    heard: list[tuple[int, str]] = []

    def broken(event: CommitEvent) -> None:
        raise RuntimeError("a subscriber bug")

    eng = Engine(SCHEMA, runtime, BASE, [broken, lambda e: heard.append((e.sid, e.datastore))])

    async def scenario() -> None:
        assert await eng.change(replace_with(TWO), 1) == []  # applied
        assert await eng.change(replace_with(INVALID), 2) != []  # invalid
        assert await eng.change(replace_with(BASE), 3, dry_run=True) == []  # test only
        runtime.refuse = PrepareError([Fault("in-use", "taken", "c1", "listen/port")])
        assert await eng.change(replace_with(BASE), 4) != []  # refused by the runtime
        runtime.refuse = None
        assert await eng.change(replace_with(BASE), 5) == []  # applied

    anyio.run(scenario)
    assert heard == [(1, "running"), (5, "running")]
    assert eng.running is BASE


def test_concurrent_changes_build_on_each_other() -> None:
    """``build`` runs under the commit lock: the second change starts from
    the running the first one made, so neither loses the other's work."""
    eng, _, events = engine(Node())
    seen: list[Node] = []

    def adding(body: str) -> Build:
        async def build(old: Node) -> tuple[Node, list[ConfigError]]:
            seen.append(old)
            await anyio.sleep(0.05)  # the other change is waiting meanwhile
            return tree(body), []

        return build

    results: list[list[ConfigError]] = []

    async def change(body: str) -> None:
        results.append(await eng.change(adding(body)))

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(change, port_xml("p1", "loop://"))
            await anyio.sleep(0.01)
            tg.start_soon(change, port_xml("p1", "loop://") + port_xml("p2", "loop://"))

    anyio.run(scenario)
    assert results == [[], []]
    assert len(seen) == 2 and seen[1] is events[0].after
    assert len(events) == 2 and eng.running is events[1].after


def test_held_must_be_the_engines_own_live_lock() -> None:
    eng, _, _ = engine()
    other, _, _ = engine()

    async def scenario() -> None:
        async with other.exclusive() as foreign:
            with pytest.raises(AssertionError):
                await eng.change(replace_with(TWO), held=foreign)
        async with eng.exclusive() as held:
            assert await eng.change(replace_with(TWO), held=held) == []
        with pytest.raises(AssertionError):  # released
            await eng.change(replace_with(BASE), held=held)

    anyio.run(scenario)
    assert eng.running is TWO


# -- candidate and locks ---------------------------------------------------------------------
def test_an_unmodified_candidate_follows_running_and_a_modified_one_stays() -> None:
    candidate = Candidate(BASE)
    eng = Engine(SCHEMA, Recorder(), BASE, [candidate.follow])
    anyio.run(eng.change, replace_with(TWO))
    assert candidate.tree is TWO
    candidate.tree = BASE  # an edit of the candidate
    anyio.run(eng.change, replace_with(tree(port_xml("p1", "loop://"))))
    assert candidate.tree is BASE and candidate.modified(eng.running)


def test_the_candidate_lock_cannot_be_taken_over_changes_and_unlock_discards_them() -> None:
    candidate = Candidate(BASE)
    eng = Engine(SCHEMA, Recorder(), BASE, [candidate.follow])
    locks = Locks(eng, candidate, is_live=lambda sid: sid != 9)

    async def scenario() -> None:
        candidate.tree = TWO
        assert [e.tag for e in await locks.lock(1, "candidate")] == ["lock-denied"]
        candidate.tree = BASE
        assert await locks.lock(1, "candidate") == []
        assert locks.busy(2, "candidate") is not None and locks.busy(1, "candidate") is None
        candidate.tree = TWO  # session 1 edits under its lock
        assert [e.tag for e in await locks.unlock(2, "candidate")] == ["operation-failed"]
        assert await locks.unlock(1, "candidate") == []
        assert candidate.tree is BASE  # RFC 6241 §8.3.5.2
        assert [e.tag for e in await locks.lock(9, "running")] == ["operation-failed"]
        assert await locks.lock(3, "running") == [] and await locks.lock(3, "candidate") == []
        candidate.tree = TWO
        locks.session_ended(3)
        assert locks.holders == {} and candidate.tree is BASE

    anyio.run(scenario)


# -- confirmed commit ------------------------------------------------------------------------
def confirmed(
    tmp_path: Path, running: Node
) -> tuple[ConfirmedCommit, Engine, Recorder, list[tuple[str, int]], ConfirmedCommitFile]:
    runtime = Recorder()
    candidate = Candidate(running)
    eng = Engine(SCHEMA, runtime, running, [candidate.follow])
    file = ConfirmedCommitFile(tmp_path / "confirmed-commit.xml", SCHEMA)
    told: list[tuple[str, int]] = []
    commit = ConfirmedCommit(eng, candidate, file, lambda e, sid, _t: told.append((e, sid)))
    return commit, eng, runtime, told, file


@pytest.mark.parametrize("started", ["before run", "after run"])
def test_resume_takes_up_a_saved_confirmed_commit_without_applying_anything(
    tmp_path: Path, started: str
) -> None:
    """A restarted control plane finds running (TWO, unconfirmed) live in the
    data plane and the file of the pending commit: ``resume`` re-arms the
    timer to the saved deadline and applies nothing; at the deadline running
    rolls back to the saved configuration and the file goes."""
    commit, eng, runtime, told, file = confirmed(tmp_path, TWO)
    saved = SavedCommit(BASE, None, time.time() + 0.5, 4)
    file.save(saved)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            if started == "before run":
                commit.resume(saved)
                await tg.start(commit.run)
            else:
                await tg.start(commit.run)
                commit.resume(saved)
            assert commit.pending is not None and commit.pending.owner == 4
            await anyio.sleep(0.2)
            assert runtime.calls == [] and eng.running is TWO and file.exists()
            with anyio.fail_after(5):
                while commit.pending is not None:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()

    anyio.run(scenario)
    assert runtime.calls == ["prepare", "apply"]
    assert eng.running is BASE and not file.exists()
    assert told == [("timeout", 0)]


def test_resume_then_confirm_with_the_persist_id_keeps_running(tmp_path: Path) -> None:
    commit, eng, runtime, told, file = confirmed(tmp_path, TWO)
    saved = SavedCommit(BASE, "tok", time.time() + 60, 4)
    file.save(saved)

    async def scenario() -> list[ConfigError]:
        async with anyio.create_task_group() as tg:
            await tg.start(commit.run)
            commit.resume(saved)
            errors = await commit.commit(11, CommitRequest(persist_id="tok"))
            tg.cancel_scope.cancel()
        return errors

    assert anyio.run(scenario) == []
    assert commit.pending is None and not file.exists()
    assert runtime.calls == [] and eng.running is TWO  # confirming changed nothing
    assert told == [("complete", 11)]


def test_a_confirmed_commit_writes_its_file_only_once_prepared(tmp_path: Path) -> None:
    """The state file is written in ``ready``: a commit the runtime refuses
    leaves no file and no pending commit behind."""
    commit, eng, runtime, told, file = confirmed(tmp_path, BASE)
    commit.candidate.tree = TWO
    runtime.refuse = PrepareError([Fault("in-use", "taken", "c2", "listen/port")])

    async def scenario() -> tuple[list[ConfigError], list[ConfigError]]:
        async with anyio.create_task_group() as tg:
            await tg.start(commit.run)
            refused = await commit.commit(1, CommitRequest(confirmed=True, timeout=60))
            assert not file.exists() and commit.pending is None
            runtime.refuse = None
            accepted = await commit.commit(1, CommitRequest(confirmed=True, timeout=60))
            tg.cancel_scope.cancel()
        return refused, accepted

    refused, accepted = anyio.run(scenario)
    assert [e.tag for e in refused] == ["in-use"] and accepted == []
    assert file.exists() and file.load().rollback == BASE and eng.running is TWO
    assert told == [("start", 1)]


def test_edit_config_options_reach_the_store_as_plain_flags() -> None:
    """continue-on-error is ``partial``, test-only is ``dry_run``: the facade
    knows no NETCONF option names."""
    from nf.northbound.datastores import Datastores

    store = Datastores(SCHEMA, Recorder(), BASE)
    bad = etree.fromstring(
        f'<config xmlns="{NC}"><serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
        + port_xml("p2", "loop://")
        + channel_xml("c2", "p2", "server", listen_xml(7002) + "<bogus/>")
        + "</serial-over-ip></config>"
    )
    delete = etree.fromstring(
        f'<config xmlns="{NC}"><serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
        + delete_channel_xml("c1")
        + "</serial-over-ip></config>"
    )

    async def scenario() -> None:
        refused = await store.edit(1, "running", bad)
        assert [e.tag for e in refused] == ["unknown-element"] and store.running is BASE
        tested = await store.edit(1, "running", delete, dry_run=True)
        assert tested == [] and store.running is BASE
        partial = await store.edit(1, "running", bad, partial=True)
        assert [e.tag for e in partial] == ["unknown-element"]
        assert store.running is not BASE  # the rest was applied

    anyio.run(scenario)


def test_a_small_change_of_a_big_configuration_does_its_work_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """diff, incremental validation, the model update and the document
    patch cost the change: a one-leaf change runs them without a worker
    thread, even when the configuration is too big to validate whole on
    the loop (the thread hops would cost more than the work).  A change
    built afresh (not derived by edits) still goes to a thread."""
    from nf.store import engine as engine_module

    hops: list[str] = []
    real = engine_module.to_thread.run_sync

    async def counting(func: object, *args: object, **kwargs: object) -> object:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module.to_thread, "run_sync", counting)
    eng, runtime, _ = engine()

    async def merge(old: Node) -> tuple[Node, list[ConfigError]]:
        edit = etree.fromstring(config(server_xml("c2", "p2", 7009)))
        return edit_partial(old, edit, "merge", SCHEMA)

    async def scenario() -> None:
        assert await eng.change(replace_with(TWO)) == []
        eng.work.measured(10.0, TWO)  # as if validating it whole were slow
        hops.clear()
        assert await eng.change(merge) == []
        assert hops == []
        assert await eng.change(replace_with(BASE)) == []
        assert hops  # built afresh: diffed and validated in a thread

    anyio.run(scenario)
    back, errors = load_document(runtime.document.to_bytes(), SCHEMA)
    assert not errors and back == BASE
