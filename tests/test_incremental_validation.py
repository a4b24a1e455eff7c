"""Incremental validation (nf/config/incremental.py) against full validation.

The contract: for a valid tree with its instance and any new tree, the
incremental check returns exactly the errors of ``validate`` (tag, app-tag,
path, message, info, order), or declines (None) and changes nothing; its
patched instance is the instance of the new tree, and ``undo`` gives back
the old one.  Hypothesis drives random valid bases through random edit
sequences (entries created, replaced by possibly invalid ones, deleted,
single leaves changed that cross-entry rules read), and targeted cases
pin each kind of rule across entries.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relayhelpers import config, port_xml, server_xml
from strategies import NS, any_configs, colliding_configs, document, valid_configs

from nf.config import load_document
from nf.config.codec import Documents, Rendered, parse
from nf.config.diff import diff
from nf.config.errors import ConfigError
from nf.config.incremental import check_change, check_syntax_change
from nf.config.tree import ListNode, Node
from nf.config.validate import Instance, check, check_syntax, validate
from nf.schema import default_schema

SCHEMA = default_schema()
TOP = (NS, "serial-over-ip")
LISTS = ((NS, "serial-port"), (NS, "channel"))


def tree_of(body: str) -> Node:
    parsed, errors = load_document(config(body), SCHEMA)
    assert errors == []
    return parsed


def skeleton_tree(cfg: object) -> Node:
    tree, _ = parse(document(cfg), SCHEMA)  # type: ignore[arg-type]
    return tree


def entries_of(tree: Node, qname: tuple[str, str]) -> ListNode:
    top = tree.get(TOP)
    found = top.get(qname) if isinstance(top, Node) else None
    return found if isinstance(found, ListNode) else ListNode()


def with_list(tree: Node, qname: tuple[str, str], entries: ListNode) -> Node:
    top = tree.get(TOP)
    top = top if isinstance(top, Node) else Node()
    top = top.set(qname, entries) if len(entries) else top.remove(qname)
    return tree.set(TOP, top) if len(top) else tree.remove(TOP)


def same_instance(a: Instance, b: Instance) -> bool:
    return canonical_text(a) == canonical_text(b)


def canonical_text(instance: Instance) -> list[tuple[str, str, dict[str, str]]]:
    """The document's elements, attributes and text in order (namespace
    declarations may sit elsewhere: a patched entry declares its own)."""
    return [
        (e.tag, (e.text or "").strip(), dict(e.attrib))
        for e in instance.holder.iter()
        if isinstance(e.tag, str)
    ]


def run(old: Node, instance: Instance, new: Node) -> Instance | None:
    """One step: incremental result equals full validation.  Returns the
    instance of ``new`` if it is valid (the engine would commit it)."""
    expected = validate(new, SCHEMA)
    result = check_change(instance, old, new, diff(old, new, SCHEMA))
    if result is None:  # declined: the instance is untouched, validate in full
        assert same_instance(instance, Instance(old, SCHEMA))
        return None if expected else Instance(new, SCHEMA)
    errors, patch = result
    assert errors == expected
    assert same_instance(instance, Instance(new, SCHEMA))
    same_document(old, new, instance.rendered)
    instance.rendered.clear()  # as the engine does once the document is made
    if errors:
        patch.undo()
        assert same_instance(instance, Instance(old, SCHEMA))
        return None
    return instance


@st.composite
def edits(draw: st.DrawFn, base: Node) -> list[Node]:
    """A sequence of trees, each a few entry changes away from one before."""
    donors = [
        skeleton_tree(draw(st.one_of(any_configs(), colliding_configs(), valid_configs())))
        for _ in range(2)
    ]
    trees: list[Node] = []
    current = base
    for _ in range(draw(st.integers(1, 4))):
        new = current
        for qname in LISTS:
            entries = entries_of(new, qname)
            pool = [e for d in donors for e in entries_of(d, qname).items()]
            for _ in range(draw(st.integers(0, 2))):
                action = draw(st.sampled_from(["replace", "delete", "leaf"]))
                keys = list(entries.keys())
                if action == "replace" and pool:
                    key, entry = draw(st.sampled_from(pool))
                    entries = entries.set(key, entry)
                elif action == "delete" and keys:
                    entries = entries.remove(draw(st.sampled_from(keys)))
                elif action == "leaf" and keys:
                    key = draw(st.sampled_from(keys))
                    entry = entries.get(key)
                    assert entry is not None
                    entries = entries.set(key, draw(_leaf_edit(entry, qname)))
            new = with_list(new, qname, entries)
        trees.append(new)
        current = new if draw(st.booleans()) else current
    return trees


@st.composite
def _leaf_edit(draw: st.DrawFn, entry: Node, qname: tuple[str, str]) -> Node:
    """One leaf that cross-entry rules read, set or removed."""
    if qname[1] == "serial-port":
        return entry.set((NS, "description"), draw(st.sampled_from(["a", "b"])))
    name = draw(st.sampled_from(["serial-port", "enabled", "mode", "listen", "secondary"]))
    if name == "serial-port":
        return entry.set((NS, name), draw(st.sampled_from(["p0", "p1", "x", "a"])))
    if name == "enabled":
        return entry.set((NS, name), draw(st.sampled_from(["true", "false"])))
    if name == "mode":
        return entry.set((NS, name), draw(st.sampled_from(["server", "client", "peer"])))
    if name == "listen":
        port = str(draw(st.integers(4000, 4002)))
        address = draw(st.sampled_from(["0.0.0.0", "127.0.0.1", "::"]))
        return entry.set((NS, "listen"), Node({(NS, "port"): port, (NS, "address"): address}))
    if draw(st.booleans()):
        return entry.remove((NS, "secondary"))
    return entry.set((NS, "secondary"), Node({(NS, "port"): str(draw(st.integers(4000, 4002)))}))


def same_document(old: Node | None, new: Node, rendered: Rendered) -> None:
    """The running document made with the entries validation rendered is
    the one rendered afresh: whole, and patched from ``old``'s."""
    whole = Documents(SCHEMA)
    assert whole.patch(new, 2, rendered=rendered) == Documents(SCHEMA).patch(new, 2)
    if old is None:  # a boot: validation rendered every entry the document is made of
        assert whole.rendered == 0
        return
    reused, fresh = Documents(SCHEMA), Documents(SCHEMA)
    for docs in (reused, fresh):
        docs.patch(old, 1)
    changes = diff(old, new, SCHEMA)
    assert reused.patch(new, 2, old, changes, 1, rendered) == fresh.patch(new, 2, old, changes, 1)


def walk(base: Node, trees: list[Node]) -> None:
    instance = Instance(base, SCHEMA, keep_xml=True)
    assert same_instance(instance, Instance(base, SCHEMA))
    same_document(None, base, instance.rendered)
    instance.rendered.clear()
    assert check(base, SCHEMA)[0] == []
    old = base
    for new in trees:
        committed = run(old, instance, new)
        if committed is not None:
            old, instance = new, committed


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_incremental_equals_full_over_random_edits(data: st.DataObject) -> None:
    base = skeleton_tree(data.draw(valid_configs()))
    walk(base, data.draw(edits(base)))


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_incremental_equals_full_over_many_random_edits(data: st.DataObject) -> None:
    base = skeleton_tree(data.draw(valid_configs(max_ports=6)))
    walk(base, data.draw(edits(base)))


def error_set(errors: list[ConfigError]) -> list[tuple[str, str, str, str]]:
    return sorted((e.tag, e.path or "", e.message, repr(e.info)) for e in errors)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_incremental_syntax_check_equals_the_full_one(data: st.DataObject) -> None:
    """An edit of the candidate checks only the entries it changed: over
    random bases free of syntax errors (possibly invalid otherwise) and
    random edits (possibly bad values), the errors are those of the full
    check_syntax, and found at all when there are any."""
    base = skeleton_tree(data.draw(st.one_of(any_configs(), valid_configs())))
    if check_syntax(base, SCHEMA):
        base = Node()
    old = base
    for new in data.draw(edits(base)):
        expected = check_syntax(new, SCHEMA)
        assert error_set(check_syntax_change(old, new, SCHEMA)) == error_set(expected)
        if not expected:
            old = new


def test_incremental_syntax_check_reports_a_bad_value_in_a_changed_entry() -> None:
    entry = entries_of(BASE, LISTS[1]).get(("c1",))
    assert entry is not None
    bad = entry.set((NS, "keepalive"), "-3")
    new = with_list(BASE, LISTS[1], entries_of(BASE, LISTS[1]).set(("c1",), bad))
    errors = check_syntax_change(BASE, new, SCHEMA)
    assert [(e.tag, e.path) for e in errors] == [
        ("invalid-value", "/soip:serial-over-ip/soip:channel[soip:name='c1']/soip:keepalive")
    ]
    assert error_set(errors) == error_set(check_syntax(new, SCHEMA))


# -- each rule across entries ----------------------------------------------------


BASE = tree_of(
    port_xml("p1", "loop://")
    + port_xml("p2", "loop://")
    + port_xml("p3", "loop://")
    + server_xml("c1", "p1", 7001)
    + server_xml("c2", "p2", 7002)
)


def incremental(new: Node) -> list[object]:
    instance = Instance(BASE, SCHEMA)
    result = check_change(instance, BASE, new, diff(BASE, new, SCHEMA))
    assert result is not None, "this change is checked incrementally"
    errors, _ = result
    assert errors == validate(new, SCHEMA)
    return [(e.tag, e.app_tag, e.path) for e in errors]


def test_deleting_a_referenced_serial_port_is_a_missing_instance() -> None:
    ports = entries_of(BASE, LISTS[0]).remove(("p2",))
    assert incremental(with_list(BASE, LISTS[0], ports)) == [
        (
            "data-missing",
            "instance-required",
            "/soip:serial-over-ip/soip:channel[soip:name='c2']/soip:serial-port",
        )
    ]


def test_a_change_of_another_entry_makes_a_unique_collision() -> None:
    channels = entries_of(BASE, LISTS[1])
    c2 = channels.get(("c2",))
    assert c2 is not None
    changed = channels.set(("c2",), c2.set((NS, "serial-port"), "p1"))
    assert incremental(with_list(BASE, LISTS[1], changed)) == [
        ("operation-failed", "data-not-unique", "/soip:serial-over-ip/soip:channel[soip:name='c2']")
    ]


def test_a_must_reading_other_entries_fails_in_the_unchanged_entry_too() -> None:
    channels = entries_of(BASE, LISTS[1])
    c2 = channels.get(("c2",))
    assert c2 is not None
    moved = c2.set((NS, "listen"), Node({(NS, "port"): "7001"}))
    paths = [p for _, _, p in incremental(with_list(BASE, LISTS[1], channels.set(("c2",), moved)))]
    assert paths == [
        "/soip:serial-over-ip/soip:channel[soip:name='c1']",
        "/soip:serial-over-ip/soip:channel[soip:name='c2']",
    ]


def test_a_created_entry_is_checked_and_an_unrelated_edit_is_valid() -> None:
    extra = tree_of(server_xml("c3", "p3", 7001))
    channels = entries_of(BASE, LISTS[1])
    created = channels.set(("c3",), entries_of(extra, LISTS[1]).get(("c3",)) or Node())
    assert len(incremental(with_list(BASE, LISTS[1], created))) == 2  # c1 and c3 collide
    c1 = channels.get(("c1",))
    assert c1 is not None
    quiet = channels.set(("c1",), c1.set((NS, "keepalive"), "30"))
    assert incremental(with_list(BASE, LISTS[1], quiet)) == []


def test_a_change_outside_unit_entries_is_declined() -> None:
    nacm = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
    instance = Instance(BASE, SCHEMA)
    for new in (
        BASE.set((nacm, "nacm"), Node({(nacm, "enable-nacm"): "false"})),
        BASE.set((nacm, "nacm"), Node()),  # no change, yet another document
    ):
        assert check_change(instance, BASE, new, diff(BASE, new, SCHEMA)) is None
        assert same_instance(instance, Instance(BASE, SCHEMA))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["set", "remove"]), st.integers(min_value=0, max_value=12)),
        max_size=8,
    ),
    st.integers(min_value=0, max_value=10),
)
def test_the_order_of_a_derived_list_is_judged_by_its_tail_as_by_all_of_it(
    steps: list[tuple[str, int]], size: int
) -> None:
    """``_same_order`` of a list derived from running (an edit) compares
    only the entries that may have moved; it must say what comparing
    every key says, whatever sets and removes (a delete and a re-create
    moves an entry last) made the list."""
    from types import SimpleNamespace

    from nf.config.incremental import _same_order

    old = ListNode({(f"k{i}",): Node() for i in range(size)})
    new = old
    chain = [old]  # kept: a derived list knows its base weakly
    for op, i in steps:
        key = (f"k{i}",)
        if op == "set":
            new = new.set(key, Node({("ns", "v"): str(len(steps))}))
        elif key in new:
            new = new.remove(key)
        chain.append(new)
    before, after = list(old.keys()), list(new.keys())
    listed = [SimpleNamespace(op="delete", key=key) for key in before if key not in new] + [
        SimpleNamespace(op="create", key=key) for key in after if key not in old
    ]
    whole = ListNode(dict(new.items()))  # not derived: every key is compared
    assert new.changed_since(old) is not None
    assert _same_order(old, new, listed) == _same_order(old, whole, listed)  # type: ignore[arg-type]


def test_the_order_of_a_one_entry_edit_of_a_big_list_is_not_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A one-leaf edit of 10 000 channels: its order is judged without
    listing the keys of the list (a twentieth of such a commit)."""
    from types import SimpleNamespace

    from nf.config.incremental import _same_order

    old = ListNode({(f"c{i}",): Node() for i in range(10_000)})
    new = old.set(("c5",), Node({("ns", "keepalive"): "31"}))
    monkeypatch.setattr(ListNode, "keys", lambda self: pytest.fail("every key read"))
    monkeypatch.setattr(ListNode, "items", lambda self: pytest.fail("every entry read"))
    assert _same_order(old, new, [SimpleNamespace(op="modify", key=("c5",))])  # type: ignore[list-item]
    removed = old.remove(("c5",))
    moved = removed.set(("c5",), Node())
    assert not _same_order(old, moved, [SimpleNamespace(op="modify", key=("c5",))])  # type: ignore[list-item]


def test_a_one_leaf_change_of_many_channels_is_checked_without_listing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check_change`` of one changed channel among 2000, the list derived
    from running's as an edit derives it, reads no list whole: work that
    grows with the configuration made a one-leaf commit of 10 000 channels
    cost more than twice one of 10."""
    body = "".join(port_xml(f"p{i}", "loop://") for i in range(2000)) + "".join(
        server_xml(f"c{i}", f"p{i}", 10000 + i) for i in range(2000)
    )
    old, errors = load_document(
        f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>'.encode(), SCHEMA
    )
    assert errors == []
    instance = Instance(old, SCHEMA)
    channels = entries_of(old, LISTS[1])
    entry = channels.get(("c7",))
    assert entry is not None
    new = with_list(old, LISTS[1], channels.set(("c7",), entry.set((NS, "keepalive"), "31")))
    changes = diff(old, new, SCHEMA)
    assert len(changes) == 1
    monkeypatch.setattr(ListNode, "keys", lambda self: pytest.fail("a list read whole"))
    monkeypatch.setattr(ListNode, "items", lambda self: pytest.fail("a list read whole"))
    result = check_change(instance, old, new, changes)
    assert result is not None and result[0] == []


def many(count: int, first: int, port: int, collide: bool = False) -> str:
    """``count`` serial ports and server channels on them, from number
    ``first``; ``collide``: the last channel listens on c1's port."""
    body = ""
    for i in range(first, first + count):
        last = collide and i == first + count - 1
        body += port_xml(f"bp{i}", "loop://") + server_xml(f"bc{i}", f"bp{i}", port + i)
        if last:
            body += server_xml(f"bx{i}", f"bp{i}", 7001)
    return body


@pytest.mark.parametrize("collide", [False, True])
def test_a_bulk_change_is_left_to_full_validation_which_gives_the_same(collide: bool) -> None:
    """A change of most entries (a commit creating thousands of channels)
    is declined: full validation of it costs less.  Its errors, instance
    and the document made of what it rendered are those of any other way."""
    one = port_xml("p1", "loop://") + server_xml("c1", "p1", 7001)
    old = tree_of(one)
    new = tree_of(one + many(40, 0, 9000, collide))
    instance = Instance(old, SCHEMA)
    assert check_change(instance, old, new, diff(old, new, SCHEMA)) is None
    assert same_instance(instance, Instance(old, SCHEMA))  # untouched
    errors, full = check(new, SCHEMA, keep_xml=True)
    assert (errors != []) == collide
    assert same_instance(full, Instance(new, SCHEMA))
    same_document(old, new, full.rendered)


def test_a_change_of_many_entries_but_under_half_is_still_incremental() -> None:
    old = tree_of(many(150, 0, 9000))
    new = tree_of(many(150, 0, 9000) + many(70, 150, 9000, collide=True))
    instance = Instance(old, SCHEMA)
    result = check_change(instance, old, new, diff(old, new, SCHEMA))
    assert result is not None, "140 changes of 440 entries are checked incrementally"
    assert result[0] == validate(new, SCHEMA) != []
