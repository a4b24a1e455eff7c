"""What one request may cost: linear scans, bounded replies, stoppable XPath.

The abusive messages themselves go through a real daemon in
test_netconf_abuse.py; these tests pin the mechanisms, pure and fast.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from lxml import etree

from nf.config import codec
from nf.config.codec import parse
from nf.config.edit import edit_partial
from nf.config.errors import MAX_ERRORS, ConfigError
from nf.config.tree import Node
from nf.northbound import errors as nb_errors
from nf.northbound import filters
from nf.northbound.errors import MAX_PATH, MAX_TEXT, rpc_errors
from nf.northbound.filters import FilterError, apply_filter
from nf.northbound.xpath_sandbox import XPathSandbox, XPathTooCostly, positions
from nf.schema import default_schema

SCHEMA = default_schema()
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"


# -- the error-path prefix scan ------------------------------------------------------


def test_prefix_scan_starts_only_where_a_name_starts() -> None:
    """The scan that made a 1 MB name freeze the daemon: a match may start
    only at the start of a run of name characters, so the regex engine
    tries each position once (linear), and prefixes are still found."""
    pattern = nb_errors._PREFIX
    path = "/soip:serial-over-ip/soip:serial-port[soip:name='" + "y" * 5000 + "']/nacm:x"
    assert pattern.findall(path) == ["soip", "soip", "soip", "nacm"]
    # the lookbehind is what keeps it linear: no match can begin inside a name
    assert pattern.pattern.startswith("(?<![")
    assert pattern.findall("a" * 100 + ":" + "b") == ["a" * 100]
    assert pattern.findall("x" + "a" * 100 + ":b")[0] == "x" + "a" * 100


# -- bounded replies -------------------------------------------------------------------


def _render(errors: list[ConfigError]) -> list[etree._Element]:
    return rpc_errors(errors, SCHEMA)


def test_a_reply_carries_at_most_max_errors_and_says_so() -> None:
    errors = [ConfigError("invalid-value", f"bad {i}") for i in range(MAX_ERRORS * 3)]
    rendered = _render(errors)
    assert len(rendered) == MAX_ERRORS
    last = rendered[-1].find(f"{{{NC}}}error-message")
    assert last is not None and "only the first 100 errors" in (last.text or "")
    exact = _render(errors[:MAX_ERRORS])
    first = exact[-1].find(f"{{{NC}}}error-message")
    assert first is not None and first.text == f"bad {MAX_ERRORS - 1}"


def test_long_messages_paths_and_info_are_shortened() -> None:
    big = "y" * 1_000_000
    error = ConfigError(
        "invalid-value",
        f'"{big}" is wrong',
        path=f"/soip:serial-over-ip/soip:serial-port[soip:name='{big}']",
        info=(("bad-element", big),),
    )
    elem = _render([error])[0]
    text = etree.tostring(elem)
    assert len(text) < 3 * MAX_TEXT + MAX_PATH + 2000
    path = elem.findtext(f"{{{NC}}}error-path") or ""
    assert path.startswith("/soip:serial-over-ip/soip:serial-port[soip:name='yyy")
    assert path.endswith("...']")  # the literal is cut, the steps are kept
    message = elem.findtext(f"{{{NC}}}error-message") or ""
    assert "1000011 characters, shortened" in message


def test_edit_stops_collecting_errors_at_the_cap() -> None:
    many = "<foo/>" * 100_000
    config = etree.fromstring(
        f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">{many}</serial-over-ip></config>'
    )
    _, errors = edit_partial(Node(), config, "merge", SCHEMA)
    assert len(errors) == MAX_ERRORS + 1  # one more: the reply says there are more
    assert {e.tag for e in errors} == {"unknown-element"}
    _, parse_errors = parse(config, SCHEMA)
    assert len(parse_errors) == MAX_ERRORS + 1


# -- values ---------------------------------------------------------------------------------


def _leaf_type(name: str) -> Any:
    def walk(node: Any) -> Any:
        for child in node.children.values():
            if child.type is not None and child.name == name:
                return child.type
            found = walk(child)
            if found is not None:
                return found
        return None

    return walk(SCHEMA.root)


def test_huge_numbers_are_refused_without_int() -> None:
    """int() refuses more than 4300 digits with ValueError (an internal
    error before) and is slow on long strings; no range needs them."""
    baud = _leaf_type("baud-rate")
    problem = baud.check("9" * 200_000)
    assert problem is not None and "out of range" in problem
    assert "(200000 characters)" in problem  # the value is not echoed whole
    assert baud.canonical("9" * 200_000) == "9" * 200_000  # left for check to refuse


def test_length_is_checked_before_any_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7950 §9.4.4 before §9.4.5: a name longer than its length range
    never reaches the pattern matcher."""
    name = _leaf_type("name")
    calls: list[str] = []

    class Spy:
        def __init__(self, spec: Any) -> None:
            self.spec = spec

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.spec, attr)

        def str_to_val(self, *args: Any) -> Any:
            calls.append("str_to_val")
            return self.spec.str_to_val(*args)

        def validate(self, *args: Any) -> Any:
            calls.append("validate")
            return self.spec.validate(*args)

    monkeypatch.setattr(name, "_spec", Spy(name._spec))
    monkeypatch.setattr(name, "_cache", {})
    problem = name.check("y" * 1_000_000)
    assert problem is not None and "wrong length" in problem
    assert calls == []
    assert name.check("ok-name") is None
    assert calls  # a short value does go through the type


# -- subtree filters ---------------------------------------------------------------------


def _data(channels: int) -> etree._Element:
    entries = "".join(
        f"<channel><name>c{i}</name><mode>server</mode></channel>" for i in range(channels)
    )
    return etree.fromstring(
        f'<data xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">{entries}</serial-over-ip></data>'
    )


def _subtree(body: str) -> etree._Element:
    return etree.fromstring(
        f'<filter xmlns="{NC}" type="subtree"><serial-over-ip xmlns="{SOIP}">{body}'
        "</serial-over-ip></filter>"
    )


def _names(result: etree._Element) -> list[str]:
    return [str(n) for n in result.xpath("//s:channel/s:name/text()", namespaces={"s": SOIP})]


def test_subtree_filter_finds_list_entries_by_key_through_an_index() -> None:
    data = _data(2000)
    wanted = [5, 1999, 77]
    body = "".join(f"<channel><name>c{i}</name></channel>" for i in wanted)
    body += "<channel><name>missing</name></channel>" * 3
    assert sorted(_names(apply_filter(data, _subtree(body), SCHEMA))) == sorted(
        f"c{i}" for i in wanted
    )
    # 20 000 key lookups against 2 000 entries fit the budget easily: an
    # index, not a scan of every entry for every filter node
    many = "".join(f"<channel><name>c{i % 2000}</name></channel>" for i in range(20_000))
    assert len(_names(apply_filter(data, _subtree(many), SCHEMA))) == 2000


def test_subtree_filter_over_budget_is_resource_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filters, "SUBTREE_BUDGET", 10_000)
    data = _data(1000)
    scan = "<channel><mode>server</mode></channel>" * 20  # non-key: a scan each
    with pytest.raises(FilterError) as caught:
        apply_filter(data, _subtree(scan), SCHEMA)
    assert caught.value.error.tag == "resource-denied"
    assert len(_names(apply_filter(data, _subtree(scan[: len(scan) // 20]), SCHEMA))) == 1000


# -- XPath filters ------------------------------------------------------------------------


def _xpath(select: str) -> etree._Element:
    return etree.fromstring(
        f'<filter xmlns="{NC}" xmlns:s="{SOIP}" type="xpath" select="{select}"/>'
    )


@pytest.mark.parametrize(
    ("select", "cheap"),
    [
        ("/s:serial-over-ip/s:channel[s:name='c1']", True),
        ("//s:channel[s:mode='server']/s:name", True),
        ("//s:channel[s:name[. = 'x']]", True),
        ("count(//*)", True),
        ("count(//*) + count(//s:x)", True),
        ("count(//*) + count(//*) + count(//*) + count(//*) + count(//*)", False),
        ("//*//*", False),
        ("/s:serial-over-ip//s:name", False),
        ("//*[. = //*]", False),
        ("//*[s:a = s:b]", False),
        ("//*[../s:x]", False),
        ("//*[following-sibling::*]", False),
        ("//*[*[*[*]]]", False),
        ("/s:a | /s:b", False),  # a union is split before this check
    ],
)
def test_which_expressions_are_cheap(select: str, cheap: bool) -> None:
    from pyang import xpath_lexer

    assert filters._cheap(xpath_lexer.scan(select)) is cheap


def test_union_branches_are_merged_like_xpath_would() -> None:
    data = _data(50)
    select = "//s:channel[s:name='c3'] | //s:channel[s:name='c7'] | //s:channel[s:name='c3']"
    assert _names(apply_filter(data, _xpath(select), SCHEMA)) == ["c3", "c7"]
    # the same answer as libxml2's own union, evaluated whole
    holder = etree.fromstring(etree.tostring(data))
    expr = filters._rewrite_select(select, None)
    assert sorted(positions(holder, expr, {"s": SOIP})) == sorted(
        set(positions(holder, expr.split("|")[0], {"s": SOIP}))
        | set(positions(holder, expr.split("|")[1], {"s": SOIP}))
    )


def test_xpath_over_the_length_cap_is_too_big() -> None:
    with pytest.raises(FilterError) as caught:
        apply_filter(_data(1), _xpath("/s:a" * 10_000), SCHEMA)
    assert caught.value.error.tag == "too-big"


@pytest.mark.timing  # the quick expression must finish within the 1 s deadline
def test_costly_xpath_goes_to_the_evaluator_and_is_stopped() -> None:
    """An expression that is not provably linear runs where it can be
    killed; one that passes the deadline answers resource-denied, and the
    worker is replaced for the next request."""
    sandbox = XPathSandbox(deadline=1.0)
    try:
        data = _data(3000)
        quick = _names(
            apply_filter(data, _xpath("//*//s:name[. = 'c42']/.."), SCHEMA, sandbox.positions)
        )
        assert quick == ["c42"]
        bomb = "|".join(["//*"] * 200)
        with pytest.raises(FilterError) as caught:
            apply_filter(data, _xpath(bomb), SCHEMA, sandbox.positions)
        assert caught.value.error.tag == "resource-denied"
        assert sandbox.killed == 1
        again = apply_filter(_data(3), _xpath("//*//s:name"), SCHEMA, sandbox.positions)
        assert _names(again) == ["c0", "c1", "c2"]
    finally:
        sandbox.close()


def test_sandbox_reports_a_deadline_as_too_costly() -> None:
    sandbox = XPathSandbox(deadline=0.3)
    try:
        holder = _data(3000)
        with pytest.raises(XPathTooCostly):
            sandbox.positions(holder, "|".join(["//*"] * 100), {})
    finally:
        sandbox.close()


# -- no copy per entry ------------------------------------------------------------------


def test_an_edit_of_n_entries_makes_no_copy_per_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists and leaf-lists were copied once per entry added, so an edit or
    a document of n entries cost n^2 (20 000 user-names: 9 s).  Count the
    copies instead of timing: they must not grow with n."""
    from nf.config import tree as tree_module

    made = {"ListNode": 0, "LeafList": 0}

    def counting(cls: type, name: str) -> None:
        original = cls.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            made[name] += 1
            original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    counting(tree_module.ListNode, "ListNode")
    counting(tree_module.LeafList, "LeafList")
    n = 5000
    users = "".join(f"<user-name>u{i}</user-name>" for i in range(n))
    channels = "".join(
        f"<channel><name>c{i}</name><serial-port>p</serial-port></channel>" for i in range(n)
    )
    config = etree.fromstring(
        f'<config xmlns="{NC}"><nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm">'
        f"<groups><group><name>g</name>{users}</group></groups></nacm>"
        f'<serial-over-ip xmlns="{SOIP}">{channels}</serial-over-ip></config>'
    )
    new, errors = edit_partial(Node(), config, "merge", SCHEMA)
    assert errors == []
    assert sum(made.values()) < 20, made
    made.update(ListNode=0, LeafList=0)
    parsed, errors = parse(config, SCHEMA)
    assert errors == []
    assert sum(made.values()) < 20, made
    assert parsed == new
    group = parsed.get(("urn:ietf:params:xml:ns:yang:ietf-netconf-acm", "nacm"))
    assert group is not None


def test_a_big_tree_or_config_is_never_worked_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small work runs inline (a thread hop would cost more), but only while
    the arguments are about as small as the last quickly validated tree: a
    100 000-channel candidate validated inline once blocked every session
    and the relay for 13 s."""
    import anyio

    from nf.northbound.datastores import Datastores
    from nf.runtime.transaction import NullRuntime
    from nf.store import engine as ds_module

    offloaded: list[str] = []
    original = ds_module.to_thread.run_sync

    async def spy(func: Any, *args: Any, **kwargs: Any) -> Any:
        offloaded.append(getattr(func, "__name__", "?"))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(ds_module.to_thread, "run_sync", spy)
    monkeypatch.setattr(ds_module, "INLINE_SECONDS", 60.0)  # "quick", whatever the load
    channels = "".join(
        f"<channel><name>c{i}</name><serial-port>p</serial-port></channel>" for i in range(2000)
    )
    big, errors = parse(
        etree.fromstring(
            f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">{channels}'
            "</serial-over-ip></config>"
        ),
        SCHEMA,
    )
    assert errors == []

    async def scenario() -> None:
        store = Datastores(SCHEMA, NullRuntime(), Node())
        await store.validate(Node())  # quick: small work may run inline now
        offloaded.clear()
        await store.validate(Node())
        assert offloaded == []  # cached or inline
        await store.validate(big)
        assert offloaded == ["check"]
        config = etree.fromstring(
            f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">{channels}'
            "</serial-over-ip></config>"
        )
        small = etree.fromstring(f'<config xmlns="{NC}"/>')
        offloaded.clear()
        await store.validate(Node())  # quick again
        await store.edit(1, "candidate", small)
        assert "edit_partial" not in offloaded
        await store.edit(1, "candidate", config)
        assert "edit_partial" in offloaded

    anyio.run(scenario)


def test_documents_over_the_element_bound_are_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    from nf.config import codec

    monkeypatch.setattr(codec, "MAX_ELEMENTS", 1000)
    monkeypatch.setattr(codec, "MAX_ATTRIBUTES", 10)
    assert len(codec.parse_xml(b"<a>" + b"<b/>" * 999 + b"</a>")) == 999
    with pytest.raises(codec.TooBig, match="1002 elements"):
        codec.parse_xml(b"<a>" + b"<b/>" * 1001 + b"</a>")
    with pytest.raises(codec.TooBig, match="11 attributes"):
        codec.parse_xml(b"<a>" + b'<b x="1"/>' * 11 + b"</a>")
    # the densest documents over the bounds (4 bytes an element, 5 an
    # attribute) are long enough to be counted: shorter ones are not
    with pytest.raises(codec.TooBig, match="1001 elements"):
        codec.parse_xml(b"<a>" + b"<b/>" * 1000 + b"</a>")
    names = " ".join(f'{chr(ord("a") + i)}=""' for i in range(11))
    with pytest.raises(codec.TooBig, match="11 attributes"):
        codec.parse_xml(f"<r {names}/>".encode())


# -- framing -----------------------------------------------------------------------------


class _Stream:
    """A channel that hands out prepared bytes in reads of ``size``."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pos = data, size, 0

    def recv(self, _limit: int) -> bytes:
        piece = self.data[self.pos : self.pos + self.size]
        self.pos += len(piece)
        return piece

    def settimeout(self, _timeout: float | None) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("read_size", [1, 7, 65536, 1 << 20])
def test_framing_reads_messages_whole_across_many_chunks(read_size: int) -> None:
    """The reader keeps a position in its buffer instead of copying the
    rest after every chunk (a 1 MB message in 1-byte chunks cost seconds);
    messages come out whole and in order, in both framings, across the
    buffer's compaction."""
    from rawclient import frame_chunks

    from nf.northbound.server import BoundedFraming, MessageTooBig, SessionEnd

    big = b"<rpc>" + b"y" * 300_000 + b"</rpc>"
    stream = frame_chunks(b"<a/>") + frame_chunks(big, [1, 2, 3, 1000]) + frame_chunks(b"<b/>")
    framing = BoundedFraming(_Stream(stream, read_size), 1 << 20)  # type: ignore[arg-type]
    assert [framing.receive(True) for _ in range(3)] == [b"<a/>", big, b"<b/>"]
    with pytest.raises(SessionEnd):
        framing.receive(True)  # end of stream
    eom = b"<a/>]]>]]>" + big + b"]]>]]><b/>]]>]]>"
    framing = BoundedFraming(_Stream(eom, read_size), 1 << 20)  # type: ignore[arg-type]
    assert [framing.receive(False) for _ in range(3)] == [b"<a/>", big, b"<b/>"]
    small = BoundedFraming(_Stream(big + b"]]>]]>", read_size), 1000)  # type: ignore[arg-type]
    with pytest.raises(MessageTooBig):
        small.receive(False)


# -- subscription filters ----------------------------------------------------------------


def _subscribe(filter_xml: str) -> None:
    from datetime import UTC, datetime

    from nf.northbound.notifications import parse_request

    op = etree.fromstring(
        f'<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
        f"{filter_xml}</create-subscription>"
    )
    parse_request(op, datetime.now(UTC), SCHEMA)


def test_subscription_filters_must_be_cheap_to_run_on_every_event() -> None:
    """A subscription's filter runs on each event as it is published (on
    the loop the relay's events come from), so its cost is bounded up front."""
    from nf.northbound.notifications import SubscriptionError

    ok_subtree = f'<filter type="subtree"><session-event xmlns="{SOIP}"/></filter>'
    ok_xpath = f'<filter xmlns:s="{SOIP}" type="xpath" select="/s:session-event | /s:port-event"/>'
    _subscribe(ok_subtree)
    _subscribe(ok_xpath)
    many = "<x/>" * 1000
    huge = f'<filter type="subtree"><session-event xmlns="{SOIP}">{many}</session-event></filter>'
    for costly in (
        huge,
        f'<filter type="xpath" select="{"|".join(["//*"] * 40)}"/>',
        '<filter type="xpath" select="//*[. = //*]"/>',
    ):
        with pytest.raises(SubscriptionError) as caught:
            _subscribe(costly)
        assert caught.value.error.tag == "resource-denied"


def test_the_parser_kept_per_thread_refuses_after_it_failed_and_is_never_shared() -> None:
    """parse_xml reuses one parser per thread: a document that failed (not
    well-formed, a DTD, too deep) leaves nothing behind for the next, which
    is parsed with the same safe settings, and no two threads share one."""
    deep = b"<a>" * 300 + b"</a>" * 300  # libxml2's bound is 256
    dtd = b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'
    for bad in (b"<a><b></a>", deep, dtd):
        with pytest.raises((etree.XMLSyntaxError, ValueError)):
            codec.parse_xml(bad)
        root = codec.parse_xml(b'<a xmlns="urn:x"><b>text</b></a>')
        assert root.tag == "{urn:x}a" and root[0].text == "text"
    mine = codec._thread_parser()
    assert codec._thread_parser() is mine
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(codec._thread_parser()))
    thread.start()
    thread.join()
    assert other and other[0] is not mine
