"""codec.Documents: whole documents rendered in time proportional to the change."""

from __future__ import annotations

from lxml import etree

from nf.app import DEMO_CONFIG
from nf.config import load_document, render
from nf.config.codec import Documents
from nf.config.edit import edit_partial
from nf.config.tree import Node
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


def _channels(n: int) -> str:
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
        _channels(3) + f'<nacm xmlns="{NACM}"><enable-nacm>true</enable-nacm><groups><group>'
        "<name>ops</name><user-name>bob</user-name></group></groups>"
        "<rule-list><name>b</name><group>ops</group></rule-list>"
        "<rule-list><name>a</name><group>ops</group></rule-list></nacm>",
    )
    _reads_back(Documents(SCHEMA), tree)
    _reads_back(Documents(SCHEMA), Node())


def test_only_changed_entries_are_rendered_again() -> None:
    docs = Documents(SCHEMA)
    tree = _edit(Node(), _channels(50))
    _reads_back(docs, tree)
    first = docs.rendered
    assert first == 100  # 50 serial ports and 50 channels
    # one leaf of one channel: that channel alone is rendered again
    tree = _edit(
        tree,
        f'<serial-over-ip xmlns="{SOIP}"><channel><name>c7</name>'
        "<description>x</description></channel></serial-over-ip>",
    )
    before = docs.rendered
    _reads_back(docs, tree)
    assert docs.rendered - before == 1
    # nothing changed: nothing rendered
    before = docs.rendered
    docs.render(tree)
    assert docs.rendered == before
