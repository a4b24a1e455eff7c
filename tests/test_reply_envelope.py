"""The rpc-reply envelope written from bytes (nf.northbound.rpcs._reply) is
byte for byte what lxml makes of the same reply, for every attribute value
a client can send; and the values survive the round trip."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from nf.config.codec import NC_NS
from nf.northbound.rpcs import _lxml_reply, _reply, ok

XML_CHARS = st.characters(
    codec="utf-8",
    categories=None,
    exclude_categories=("Cs",),
).filter(
    lambda c: c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c > "\uffff"
)
NAMES = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_.-]{0,8}\Z").filter(
    lambda n: not n.lower().startswith("xml")
)
ATTRIBUTES = st.dictionaries(NAMES, st.text(XML_CHARS, max_size=12), max_size=4)


def attribute_ref(value: str) -> str:
    """``value`` as a client may write it in an attribute: every character a
    character reference, so that none is normalised away."""
    return "".join(f"&#{ord(c)};" for c in value)


@given(ATTRIBUTES)
def test_an_envelope_without_body_is_lxmls(attrib: dict[str, str]) -> None:
    assert _reply(attrib, []) == _lxml_reply(attrib, [])


@given(ATTRIBUTES)
def test_an_ok_envelope_is_lxmls(attrib: dict[str, str]) -> None:
    assert _reply(attrib, ok()) == _lxml_reply(attrib, ok())


@given(ATTRIBUTES)
def test_echoed_values_read_back_as_sent(attrib: dict[str, str]) -> None:
    written = "".join(f' {name}="{attribute_ref(value)}"' for name, value in attrib.items())
    rpc = etree.fromstring(f'<rpc xmlns="{NC_NS}"{written}/>'.encode())
    echoed = {str(k): str(v) for k, v in rpc.attrib.items()}
    assert echoed == attrib
    reply = etree.fromstring(_reply(echoed, []))
    assert {str(k): str(v) for k, v in reply.attrib.items()} == attrib
    assert reply.tag == f"{{{NC_NS}}}rpc-reply"


def test_other_bodies_and_qualified_attributes_are_left_to_lxml() -> None:
    ex = "http://example.net/content/1.0"
    qualified = {"message-id": "1", f"{{{ex}}}user-id": "fred"}
    reply = etree.fromstring(_reply(qualified, []))
    assert reply.get(f"{{{ex}}}user-id") == "fred"
    data = etree.Element(f"{{{NC_NS}}}data")
    etree.SubElement(data, "{urn:x}leaf").text = "v"
    assert _reply({"message-id": "2"}, [data]) == _lxml_reply({"message-id": "2"}, [data])
    not_bare = ok()
    not_bare[0].text = "x"
    assert _reply({}, not_bare) == _lxml_reply({}, not_bare)
