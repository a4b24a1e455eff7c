"""codec.Documents: whole documents rendered in time proportional to the change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from nf.app import DEMO_CONFIG
from nf.config import load_document, render
from nf.config.codec import Documents
from nf.config.diff import diff
from nf.config.edit import edit_partial
from nf.config.tree import Node
from nf.runtime.document import Document
from nf.schema import default_schema

SCHEMA = default_schema()
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"


def _edit(tree: Node, body: str) -> Node:
    config = etree.fromstring(f'<config xmlns="{NC}">{body}</config>')
    new, errors = edit_partial(tree, config, "merge", SCHEMA)
    assert not errors, errors
    return new


def _described(tree: Node, channel: str, text: str) -> Node:
    """``tree`` with channel ``channel``'s description set to ``text`` (an edit)."""
    return _edit(
        tree,
        f'<serial-over-ip xmlns="{SOIP}"><channel><name>{channel}</name>'
        f"<description>{text}</description></channel></serial-over-ip>",
    )


def channels_config(n: int) -> str:
    """``n`` serial ports and a server channel on each (test_nmda_view too)."""
    ports = "".join(
        f"<serial-port><name>p{i}</name><device>/dev/ttyS{i}</device></serial-port>"
        for i in range(n)
    )
    channels = "".join(
        f"<channel><name>c{i}</name><serial-port>p{i}</serial-port><mode>server</mode>"
        f"<listen><port>{9000 + i}</port></listen></channel>"
        for i in range(n)
    )
    return f'<serial-over-ip xmlns="{SOIP}">{ports}{channels}</serial-over-ip>'


def _reads_back(docs: Documents, tree: Node) -> None:
    data = docs.render(tree)
    back, errors = load_document(data, SCHEMA)
    assert not errors, errors
    assert back == tree
    # the same document as rendering it whole, up to serialisation details
    whole, errors = load_document(etree.tostring(render(tree, SCHEMA)), SCHEMA)
    assert not errors and whole == back


def test_a_document_reads_back_as_its_tree() -> None:
    tree, errors = load_document(DEMO_CONFIG, SCHEMA)
    assert not errors
    tree = _edit(
        tree,
        channels_config(3) + f'<nacm xmlns="{NACM}"><enable-nacm>true</enable-nacm><groups><group>'
        "<name>ops</name><user-name>bob</user-name></group></groups>"
        "<rule-list><name>b</name><group>ops</group></rule-list>"
        "<rule-list><name>a</name><group>ops</group></rule-list></nacm>",
    )
    _reads_back(Documents(SCHEMA), tree)
    _reads_back(Documents(SCHEMA), Node())


def test_only_changed_entries_are_rendered_again() -> None:
    docs = Documents(SCHEMA)
    tree = _edit(Node(), channels_config(50))
    _reads_back(docs, tree)
    first = docs.rendered
    assert first == 100  # 50 serial ports and 50 channels
    # one leaf of one channel: that channel alone is rendered again
    tree = _described(tree, "c7", "x")
    before = docs.rendered
    _reads_back(docs, tree)
    assert docs.rendered - before == 1
    # nothing changed: nothing rendered
    before = docs.rendered
    docs.render(tree)
    assert docs.rendered == before


def _reads_back_after(docs: Documents, old: Node, tree: Node) -> None:
    data = docs.render(tree, old, diff(old, tree, SCHEMA))
    back, errors = load_document(data, SCHEMA)
    assert not errors, errors
    assert back == tree
    assert data == Documents(SCHEMA).render(tree)  # byte for byte a whole rendering


def test_a_commit_patches_the_lists_it_changes_and_visits_only_its_entries() -> None:
    """Given the change from the tree rendered last, a one-leaf commit of a
    1000-channel configuration looks at one entry, not 2000."""
    docs = Documents(SCHEMA)
    tree = _edit(Node(), channels_config(1000))
    docs.render(tree)
    for step, body in enumerate(
        (
            "<channel><name>c7</name><description>x</description></channel>",
            "<channel><name>new</name><serial-port>p1</serial-port><mode>server</mode>"
            "<listen><port>20000</port></listen></channel>",
            '<channel xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete">'
            "<name>c3</name></channel>",
        )
    ):
        old, tree = tree, _edit(tree, f'<serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip>')
        before = docs.visited
        _reads_back_after(docs, old, tree)
        assert docs.visited - before == 1, step


def test_a_change_from_another_tree_than_the_last_rendered_walks_the_lists() -> None:
    """A refused commit rendered a tree that never ran: the next change,
    from running, cannot patch that one; it is still rendered right."""
    docs = Documents(SCHEMA)
    running = _edit(Node(), channels_config(20))
    docs.render(running)
    refused = _described(running, "c1", "refused")
    docs.render(refused, running, diff(running, refused, SCHEMA))
    other = _described(running, "c2", "next")
    _reads_back_after(docs, running, other)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["merge", "delete"]), st.integers(0, 12)), max_size=8))
def test_patched_documents_equal_whole_ones_over_random_edits(
    steps: list[tuple[str, int]],
) -> None:
    docs = Documents(SCHEMA)
    tree = _edit(Node(), channels_config(8))
    docs.render(tree)
    for op, i in steps:
        if op == "delete" and i >= 8:
            continue
        attr = f' xmlns:nc="{NC}" nc:operation="delete"' if op == "delete" else ""
        body = (
            f"<channel{attr}><name>c{i}</name></channel>"
            if op == "delete"
            else f"<channel><name>c{i}</name><serial-port>p0</serial-port><mode>server</mode>"
            f"<description>d{len(steps)}</description><listen><port>{9100 + i}</port></listen>"
            "</channel>"
        )
        config = etree.fromstring(
            f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip></config>'
        )
        new, _errors = edit_partial(tree, config, "merge", SCHEMA)
        _reads_back_after(docs, tree, new)
        tree = new


# -- patches of the document a data plane keeps (nf.runtime.document) ------------------------


def _rule_list(name: str, insert: str = "") -> str:
    """A NACM rule-list (an ordered-by user list) with ``insert`` attributes."""
    return (
        f'<nacm xmlns="{NACM}" xmlns:yang="urn:ietf:params:xml:ns:yang:1"><rule-list{insert}>'
        f"<name>{name}</name><group>*</group></rule-list></nacm>"
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["merge", "delete", "describe", "rule-first", "rule-last", "replace"]),
            st.integers(0, 12),
        ),
        max_size=10,
    )
)
def test_patches_keep_the_document_a_whole_render_gives_over_random_edits(
    steps: list[tuple[str, int]],
) -> None:
    """A data plane that applies each change's patch to the document it
    keeps has, after any sequence of edits (creates, deletes, one-leaf
    changes, rule-lists inserted first or last in an ordered-by user list,
    a whole replace), exactly the bytes of the document rendered whole."""
    docs = Documents(SCHEMA)
    tree = _edit(Node(), channels_config(8))
    kept = Document.of(docs.patch(tree, 1))
    assert kept.to_bytes() == docs.render(tree)
    for version, (op, i) in enumerate(steps, start=2):
        if op == "delete":
            body = (
                f'<serial-over-ip xmlns="{SOIP}"><channel xmlns:nc="{NC}" nc:operation="delete">'
                f"<name>c{i}</name></channel></serial-over-ip>"
            )
        elif op == "describe":
            body = (
                f'<serial-over-ip xmlns="{SOIP}"><channel><name>c{i}</name>'
                f"<description>v{version}</description></channel></serial-over-ip>"
            )
        elif op.startswith("rule"):
            where = "first" if op == "rule-first" else "last"
            body = _rule_list(f"r{i}", f' yang:insert="{where}"')
        else:
            body = (
                f'<serial-over-ip xmlns="{SOIP}"><channel><name>c{i}</name>'
                f"<serial-port>p0</serial-port><mode>server</mode>"
                f"<listen><port>{9100 + i}</port></listen></channel></serial-over-ip>"
            )
        config = etree.fromstring(f'<config xmlns="{NC}">{body}</config>')
        new, errors = edit_partial(tree, config, "merge", SCHEMA)
        if errors:
            continue  # e.g. a delete of an entry that is not there
        if op == "replace":  # the same content, built afresh: no list derives from tree's
            new, errors = load_document(docs.render(new), SCHEMA)
            assert not errors
        patch = docs.patch(new, version, tree, diff(tree, new, SCHEMA), kept.version)
        assert kept.check(patch) is None
        kept.apply(patch)
        assert kept.to_bytes() == docs.render(new), (op, i)
        tree = new


def test_a_one_leaf_change_renders_and_sends_one_entry_of_thousands() -> None:
    """The cost of a commit's document follows the change: one entry
    rendered and sent, of 2000."""
    docs = Documents(SCHEMA)
    tree = _edit(Node(), channels_config(1000))
    kept = Document.of(docs.patch(tree, 1))
    new = _described(tree, "c7", "x")
    before = docs.rendered
    patch = docs.patch(new, 2, tree, diff(tree, new, SCHEMA), 1)
    assert docs.rendered - before == 1
    assert [(lst.whole, len(lst.entries)) for lst in patch.lists] == [(False, 1)]
    kept.apply(patch)
    assert kept.to_bytes() == docs.render(new)


def test_a_patch_applies_only_to_the_version_it_was_made_of() -> None:
    docs = Documents(SCHEMA)
    tree = _edit(Node(), channels_config(2))
    kept = Document.of(docs.patch(tree, 5))
    new = _described(tree, "c1", "x")
    stale = docs.patch(new, 7, tree, diff(tree, new, SCHEMA), 6)
    assert kept.check(stale) == "document version 6 expected, 5 kept"
    assert kept.check(docs.patch(new, 7)) is None  # a whole one always applies
