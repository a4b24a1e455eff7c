"""The typed model the runtime consumes: defaults from the schema, and the
per-entry update a commit uses equals a full rebuild."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import X, valid_configs, xml_text

from nf.config.codec import load_document
from nf.config.diff import diff
from nf.config.model import from_tree, update
from nf.config.tree import Node
from nf.config.validate import check
from nf.schema import default_schema

SCHEMA = default_schema()


def test_model_reads_defaults_from_the_schema() -> None:
    tree, _ = load_document(
        '<serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
        "<serial-port><name>p</name><device>loop://</device></serial-port>"
        "<channel><name>c</name><serial-port>p</serial-port><mode>server</mode>"
        "<listen><port>4000</port></listen><secondary><port>4001</port></secondary>"
        "</channel></serial-over-ip>",
        SCHEMA,
    )
    model = from_tree(tree, SCHEMA)
    port = model.serial_ports["p"]
    assert (port.baud_rate, port.data_bits, port.parity, port.stop_bits) == (115200, 8, "none", "1")
    channel = model.channels["c"]
    assert channel.enabled and channel.keepalive == 60 and not channel.takeover
    assert (channel.listen_address, channel.listen_port) == ("0.0.0.0", 4000)
    assert channel.secondary is not None
    assert (channel.secondary.response_mode, channel.secondary.timeout_ms) == ("slotted", 600)
    assert not channel.packing.enabled


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_update_equals_full_rebuild(data: st.DataObject) -> None:
    a_cfg: X = data.draw(valid_configs())
    b_cfg: X = data.draw(valid_configs())
    a, _ = load_document(xml_text(a_cfg), SCHEMA)
    b, _ = load_document(xml_text(b_cfg), SCHEMA)
    errors, instance = check(b, SCHEMA)
    assert errors == []
    assert update(from_tree(a, SCHEMA), diff(a, b, SCHEMA), instance, SCHEMA) == from_tree(
        b, SCHEMA
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_configs())
def test_boot_reads_every_entry_in_place_as_a_rebuild_does(cfg: X) -> None:
    """At boot every entry is created: each is read from the instance
    document in place (model._ElementView), and the model is the one read
    from the completed tree (model._View of nf.config.codec.parse's tree)."""
    tree, _ = load_document(xml_text(cfg), SCHEMA)
    errors, instance = check(tree, SCHEMA)
    assert errors == []
    empty = from_tree(Node(), SCHEMA)
    assert update(empty, diff(Node(), tree, SCHEMA), instance, SCHEMA) == from_tree(tree, SCHEMA)
