"""codec.parse: errors inside list entries carry the entry's path.

A list entry is read without computing its path, and read again with it
only when it has an error; these tests guard that the errors (paths,
order, count) are those of reading it with its path the first time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from nf.config.codec import parse
from nf.schema import default_schema

SCHEMA = default_schema()
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"


def _errors(body: str) -> list[tuple[str, str, str | None]]:
    holder = etree.fromstring(
        f'<data><serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip></data>'
    )
    _tree, errors = parse(holder, SCHEMA)
    return [(e.tag, e.message, e.path) for e in errors]


def test_an_error_in_an_entry_names_the_entry() -> None:
    errors = _errors(
        "<channel><name>ok</name><mode>server</mode></channel>"
        "<channel><name>bad</name><keepalive>1</keepalive><keepalive>2</keepalive>"
        "<bogus/><listen><port>1</port><port>2</port></listen></channel>"
    )
    assert errors == [
        (
            "bad-element",
            'leaf "keepalive" given more than once',
            "/soip:serial-over-ip/soip:channel[soip:name='bad']/soip:keepalive",
        ),
        (
            "unknown-element",
            'unknown element "bogus"',
            "/soip:serial-over-ip/soip:channel[soip:name='bad']",
        ),
        (
            "bad-element",
            'leaf "port" given more than once',
            "/soip:serial-over-ip/soip:channel[soip:name='bad']/soip:listen/soip:port",
        ),
    ]


def test_an_entry_without_its_key() -> None:
    errors = _errors("<channel><mode>server</mode><bogus/></channel>")
    assert [e[0] for e in errors] == ["unknown-element", "missing-element"]
    assert errors[0][2] == "/soip:serial-over-ip/soip:channel"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(
                [
                    "",
                    "<bogus/>",
                    "<keepalive>1</keepalive><keepalive>1</keepalive>",
                    "<keepalive>x</keepalive>",
                    "<mode>server</mode>",
                ]
            ),
        ),
        max_size=6,
    )
)
def test_each_error_once_and_in_document_order(entries: list[tuple[str, str]]) -> None:
    body = "".join(f"<channel><name>{n}</name>{inner}</channel>" for n, inner in entries)
    errors = _errors(body)
    expected = []
    seen: set[str] = set()
    for name, inner in entries:
        where = f"/soip:serial-over-ip/soip:channel[soip:name='{name}']"
        if "bogus" in inner:
            expected.append(("unknown-element", where))
        if inner.count("<keepalive>") == 2:
            expected.append(("bad-element", where + "/soip:keepalive"))
        if name in seen:
            expected.append(("operation-failed", where))
        seen.add(name)
    assert [(tag, path) for tag, _message, path in errors] == expected
