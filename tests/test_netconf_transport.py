"""NETCONF over real SSH, byte by byte (RFC 6242, RFC 6241 §4 and §8.1).

Hello and capabilities, both framings and their edge cases, message-level
errors, XML attacks, size limits, authentication, isolation between
sessions and concurrent sessions.  Everything goes through ``RawClient``
so the test decides every byte on the wire; every read has a time limit.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from conftest import DaemonFactory, Running
from lxml import etree
from rawclient import (
    BASE_10,
    BASE_11,
    EOM,
    GET_CONFIG,
    NC,
    NC_NS,
    Closed,
    RawClient,
    error_tags,
    frame_chunks,
    frame_eom,
    hello_xml,
    is_ok,
    rpc_xml,
)

from nf.northbound.server import NetconfServer

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
MODULE = "nf-serial-over-ip"
SERVER_LOG = "nf.northbound.server"


# -- helpers -------------------------------------------------------------------------
def server_of(running: Running) -> NetconfServer:
    server = running.daemon.server
    assert server is not None
    return server


def connect(running: Running, **kwargs: object) -> RawClient:
    """An authenticated connection with the netconf subsystem, before any hello."""
    options: dict[str, object] = {"password": running.password}
    options.update(kwargs)
    username = str(options.pop("username", running.username))
    return RawClient(running.host, running.port, username, **options).connect()  # type: ignore[arg-type]


def session(running: Running, capabilities: Sequence[str] = (BASE_10, BASE_11)) -> RawClient:
    """A connection past the hello exchange."""
    client = connect(running)
    client.hello(capabilities)
    return client


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def no_sessions(running: Running) -> bool:
    return wait_until(lambda: server_of(running).session_ids() == [])


def errors(reply: etree._Element) -> list[etree._Element]:
    assert reply.tag == f"{NC}rpc-reply", etree.tostring(reply)
    return list(reply.iterfind(f"{NC}rpc-error"))


def one_error(reply: etree._Element) -> etree._Element:
    found = errors(reply)
    assert len(found) == 1, etree.tostring(reply)
    return found[0]


def info(error: etree._Element, name: str) -> str | None:
    return error.findtext(f"{NC}error-info/{NC}{name}")


def assert_serves(running: Running) -> None:
    """A fresh client gets through hello and get-config."""
    with session(running) as client:
        reply = client.rpc(GET_CONFIG, "alive")
        assert reply.get("message-id") == "alive"
        assert reply.find(f"{NC}data") is not None, etree.tostring(reply)


def data_text(reply: etree._Element) -> bytes:
    data = reply.find(f"{NC}data")
    assert data is not None, etree.tostring(reply)
    return etree.tostring(data)


def edit(target: str, body: str) -> str:
    return (
        f"<edit-config><target><{target}/></target>"
        f'<config><serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip></config></edit-config>'
    )


def port_description(text: str) -> str:
    return f"<serial-port><name>demo</name><description>{text}</description></serial-port>"


def channel_description(text: str) -> str:
    return f"<channel><name>demo</name><description>{text}</description></channel>"


def lock(target: str) -> str:
    return f"<lock><target><{target}/></target></lock>"


def unlock(target: str) -> str:
    return f"<unlock><target><{target}/></target></unlock>"


def running_config(running: Running) -> etree._Element:
    with session(running) as client:
        reply = client.rpc(GET_CONFIG)
    data = reply.find(f"{NC}data")
    assert data is not None, etree.tostring(reply)
    return data


def leaf(data: etree._Element, path: str) -> str | None:
    return data.findtext(path.replace("soip:", f"{{{SOIP}}}"))


# -- hello (RFC 6241 §8.1, RFC 6242 §3) ------------------------------------------------
def test_server_hello_capabilities_and_session_id(daemon: Running) -> None:
    with connect(daemon) as client:
        hello = client.read_hello()
        assert hello.tag == f"{NC}hello"
        caps = client.server_capabilities
        for cap in (
            BASE_10,
            BASE_11,
            "urn:ietf:params:netconf:capability:writable-running:1.0",
            "urn:ietf:params:netconf:capability:candidate:1.0",
            "urn:ietf:params:netconf:capability:validate:1.1",
            "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
            "urn:ietf:params:netconf:capability:xpath:1.0",
        ):
            assert cap in caps
        revision = daemon.daemon.schema.modules[MODULE].revision
        assert revision
        assert f"{SOIP}?module={MODULE}&revision={revision}" in caps
        assert len(caps) == len(set(caps))
        assert len(hello.findall(f"{NC}session-id")) == 1
        assert client.session_id is not None and client.session_id > 0
        assert server_of(daemon).session_ids() == [client.session_id]
        assert client.buffer == b""  # nothing but the hello before ours


def test_session_ids_are_unique(daemon: Running) -> None:
    with session(daemon) as first, session(daemon) as second:
        assert first.session_id != second.session_id
        assert server_of(daemon).session_ids() == sorted([first.session_id, second.session_id])


def test_base10_client_gets_end_of_message_framing(daemon: Running) -> None:
    with connect(daemon) as client:
        client.read_hello()
        client.send(frame_eom(hello_xml([BASE_10])))
        for mid in ("1", "2"):
            client.send(frame_eom(rpc_xml(GET_CONFIG, mid)))
            raw = client.read_eom()
            assert raw.startswith(b"<?xml"), raw[:40]
            reply = etree.fromstring(raw)
            assert reply.get("message-id") == mid
            assert b"<name>demo</name>" in data_text(reply)
        assert client.buffer == b""


def test_base11_client_gets_chunked_framing(daemon: Running) -> None:
    with connect(daemon) as client:
        client.read_hello()
        client.send(frame_eom(hello_xml([BASE_10, BASE_11])))
        client.send(frame_chunks(rpc_xml(GET_CONFIG, "1")))
        raw = client.read_chunked()  # raises FramingError unless it starts with "\n#"
        reply = etree.fromstring(raw)
        assert reply.get("message-id") == "1"
        assert b"<name>demo</name>" in data_text(reply)
        assert client.buffer == b""


def test_base11_only_client_gets_chunked_framing(daemon: Running) -> None:
    with session(daemon, [BASE_11]) as client:
        assert client.chunked
        assert is_ok(client.rpc("<validate><source><running/></source></validate>"))


def test_hello_and_first_rpc_in_one_write(daemon: Running) -> None:
    with connect(daemon) as client:
        client.read_hello()
        client.send(frame_eom(hello_xml()) + frame_chunks(rpc_xml(GET_CONFIG, "9")))
        client.chunked = True
        assert etree.fromstring(client.read_message()).get("message-id") == "9"


def test_rpc_before_hello_closes_cleanly(daemon: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nf")
    with connect(daemon) as client:
        client.send(frame_eom(rpc_xml(GET_CONFIG)))
        rest = client.wait_closed()
    assert rest.count(EOM) == 1 and b"<hello" in rest  # the server's hello, nothing else
    assert b"rpc-reply" not in rest
    assert no_sessions(daemon)
    assert not [r for r in caplog.records if r.name.startswith("nf") and r.levelno >= logging.ERROR]
    assert_serves(daemon)


BAD_HELLOS = {
    "wrong namespace": hello_xml(ns="urn:example:not-netconf"),
    "no namespace": b"<hello><capabilities><capability>"
    + BASE_10.encode()
    + b"</capability></capabilities></hello>",
    "session-id": hello_xml().replace(b"</hello>", b"<session-id>4</session-id></hello>"),
    "neither base": hello_xml(["urn:ietf:params:netconf:capability:candidate:1.0"]),
    "unknown base only": hello_xml(["urn:ietf:params:netconf:base:1.2"]),
    "no capabilities": f'<hello xmlns="{NC_NS}"/>'.encode(),
    "not well-formed": b'<hello xmlns="' + NC_NS.encode() + b'"><capabilities>',
    "dtd": b'<!DOCTYPE hello [<!ENTITY b "urn:ietf:params:netconf:base:1.0">]>'
    + b'<hello xmlns="'
    + NC_NS.encode()
    + b'"><capabilities><capability>&b;</capability></capabilities></hello>',
}


@pytest.mark.parametrize("hello", BAD_HELLOS.values(), ids=BAD_HELLOS.keys())
def test_bad_hello_disconnects(daemon: Running, hello: bytes) -> None:
    with connect(daemon) as client:
        client.read_hello()
        client.send(frame_eom(hello))
        rest = client.wait_closed()
    assert rest == b""  # no reply of any kind, just the end of the session
    assert no_sessions(daemon)
    assert_serves(daemon)


# -- chunked framing (RFC 6242 §4.2) ----------------------------------------------------
MULTIBYTE_ID = "id-é-€-😀-終"


@pytest.mark.parametrize("sizes", [[1], [2], [3], [1, 2, 3, 5, 8], [64]], ids=str)
def test_message_in_many_chunks(daemon: Running, sizes: list[int]) -> None:
    message = rpc_xml(GET_CONFIG, MULTIBYTE_ID)
    with session(daemon) as client:
        client.send(frame_chunks(message, sizes))
        reply = etree.fromstring(client.read_message())
        assert reply.get("message-id") == MULTIBYTE_ID
        assert b"<name>demo</name>" in data_text(reply)


def test_chunk_boundaries_inside_multibyte_characters(daemon: Running) -> None:
    text = "Grüße € 😀 終端"
    message = rpc_xml(edit("candidate", port_description(text)), "é😀")
    # cut every multibyte character in the middle (after its first byte, and
    # after its second byte for three- and four-byte ones)
    cuts: list[int] = []
    for char in "ü€😀終":
        pos = message.index(char.encode())
        cuts += [pos + 1] if len(char.encode()) == 2 else [pos + 1, pos + 2]
    bounds = [0, *sorted(cuts), len(message)]
    framed = b"".join(b"\n#%d\n%s" % (b - a, message[a:b]) for a, b in itertools.pairwise(bounds))
    with session(daemon) as client:
        client.send(framed + b"\n##\n")
        reply = etree.fromstring(client.read_message())
        assert reply.get("message-id") == "é😀"
        assert is_ok(reply), etree.tostring(reply)
        got = client.rpc("<get-config><source><candidate/></source></get-config>")
        data = got.find(f"{NC}data")
        assert data is not None
        assert leaf(data, "soip:serial-over-ip/soip:serial-port/soip:description") == text


def test_end_of_chunks_marker_inside_chunk_data(daemon: Running) -> None:
    """Chunk data is counted, never scanned: "\n##\n" and "\n#9\n" in the data are data."""
    text = "a\n##\nb\n#9\nc"
    message = rpc_xml(edit("candidate", port_description(text)), "marker")
    cut = message.index(b"##")
    with session(daemon) as client:
        client.send(frame_chunks(message[:cut])[:-4] + frame_chunks(message[cut:]))
        reply = etree.fromstring(client.read_message())
        assert is_ok(reply), etree.tostring(reply)
        got = client.rpc("<get-config><source><candidate/></source></get-config>")
        data = got.find(f"{NC}data")
        assert data is not None
        stored = leaf(data, "soip:serial-over-ip/soip:serial-port/soip:description")
        assert stored == text


def test_two_messages_in_one_write(daemon: Running) -> None:
    with session(daemon) as client:
        client.send(frame_chunks(rpc_xml(GET_CONFIG, "1")) + frame_chunks(rpc_xml("<get/>", "2")))
        first = etree.fromstring(client.read_message())
        second = etree.fromstring(client.read_message())
        assert (first.get("message-id"), second.get("message-id")) == ("1", "2")
        assert first.find(f"{NC}data") is not None and second.find(f"{NC}data") is not None


def test_two_messages_in_one_write_base10(daemon: Running) -> None:
    with session(daemon, [BASE_10]) as client:
        client.send(frame_eom(rpc_xml(GET_CONFIG, "1")) + frame_eom(rpc_xml(GET_CONFIG, "2")))
        ids = [etree.fromstring(client.read_message()).get("message-id") for _ in range(2)]
        assert ids == ["1", "2"]


@pytest.mark.parametrize("chunked", [True, False], ids=["1.1", "1.0"])
def test_message_split_across_writes_with_delays(daemon: Running, chunked: bool) -> None:
    message = rpc_xml(GET_CONFIG, "slow")
    framed = frame_chunks(message, [40]) if chunked else frame_eom(message)
    with session(daemon, [BASE_11] if chunked else [BASE_10]) as client:
        # pieces of 7 bytes cut chunk headers, chunk data and the ]]>]]> marker
        for pos in range(0, len(framed), 7):
            client.send(framed[pos : pos + 7])
            time.sleep(0.01)
        reply = etree.fromstring(client.read_message())
        assert reply.get("message-id") == "slow"
        assert reply.find(f"{NC}data") is not None


BAD_CHUNKS = {
    "end-of-message framing": frame_eom(rpc_xml(GET_CONFIG)),
    "zero size": b"\n#0\n\n##\n",
    "leading zero": b"\n#05\n<rpc/\n##\n",
    "letters": b"\n#abc\n",
    "negative": b"\n#-5\n",
    "space": b"\n# 5\nhello\n##\n",
    "eleven digits": b"\n#12345678901\n",
    "end without chunk": b"\n##\n",
    "garbage after chunk": b"\n#5\n<rpc/x#\n##\n",
    "no LF before #": b"#5\n<rpc>\n##\n",
}


@pytest.mark.parametrize("framed", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_invalid_chunk_header_closes_session(daemon: Running, framed: bytes) -> None:
    with session(daemon) as client:
        client.send(framed)
        rest = client.wait_closed()
    assert rest == b""
    assert no_sessions(daemon)


# -- message-level errors (RFC 6241 §4) -------------------------------------------------
MALFORMED = {
    "unclosed": b'<rpc message-id="1" xmlns="' + NC_NS.encode() + b'"><get>',
    "mismatched": b'<rpc message-id="1" xmlns="' + NC_NS.encode() + b'"><get></rpc>',
    "text": b"hello there",
    "not utf-8": b"<rpc message-id='\xff\xfe'/>",
    "two roots": b"<a/><b/>",
    "undeclared prefix": b'<x:rpc message-id="1"/>',
}


@pytest.mark.parametrize("chunked", [True, False], ids=["1.1", "1.0"])
@pytest.mark.parametrize("message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_xml_gets_malformed_message_and_session_survives(
    daemon: Running, message: bytes, chunked: bool
) -> None:
    with session(daemon, [BASE_11] if chunked else [BASE_10]) as client:
        reply = client.request(message)
        error = one_error(reply)
        assert error.findtext(f"{NC}error-type") == "rpc"
        assert error.findtext(f"{NC}error-tag") == "malformed-message"
        assert error.findtext(f"{NC}error-severity") == "error"
        after = client.rpc(GET_CONFIG, "next")
        assert after.get("message-id") == "next"
        assert after.find(f"{NC}data") is not None


def test_rpc_without_message_id(daemon: Running) -> None:
    with session(daemon) as client:
        reply = client.rpc(GET_CONFIG, message_id=None)
        assert reply.get("message-id") is None
        error = one_error(reply)
        assert error.findtext(f"{NC}error-tag") == "missing-attribute"
        assert error.findtext(f"{NC}error-type") == "rpc"
        assert info(error, "bad-attribute") == "message-id"
        assert info(error, "bad-element") == "rpc"
        assert client.rpc(GET_CONFIG, "2").find(f"{NC}data") is not None


@pytest.mark.parametrize("body", [GET_CONFIG, "<no-such-operation/>"], ids=["ok", "error"])
def test_rpc_attributes_echoed(daemon: Running, body: str) -> None:
    ex = "http://example.net/content/1.0"
    message = (
        f'<rpc message-id="101" xmlns="{NC_NS}" xmlns:ex="{ex}" ex:user-id="fred" '
        f'plain="x &amp; &lt;y&gt;">{body}</rpc>'
    ).encode()
    with session(daemon) as client:
        reply = client.request(message)
    assert reply.get("message-id") == "101"
    assert reply.get(f"{{{ex}}}user-id") == "fred"
    assert reply.get("plain") == "x & <y>"


def test_rpc_with_no_operation(daemon: Running) -> None:
    with session(daemon) as client:
        error = one_error(client.rpc(""))
        assert error.findtext(f"{NC}error-tag") == "missing-element"
        assert info(error, "bad-element") == "rpc"
        assert client.rpc(GET_CONFIG, "2").find(f"{NC}data") is not None


def test_rpc_with_two_operations(daemon: Running) -> None:
    with session(daemon) as client:
        reply = client.rpc(GET_CONFIG + edit("candidate", port_description("twice")))
        error = one_error(reply)
        assert error.findtext(f"{NC}error-tag") == "unknown-element"
        assert info(error, "bad-element") == "edit-config"
        # neither operation ran
        got = client.rpc("<get-config><source><candidate/></source></get-config>")
        assert b"twice" not in data_text(got)


@pytest.mark.parametrize("namespace", [NC_NS, SOIP], ids=["base", "module"])
def test_unknown_operation(daemon: Running, namespace: str) -> None:
    with session(daemon) as client:
        error = one_error(client.rpc(f'<frobnicate xmlns="{namespace}"/>'))
        assert error.findtext(f"{NC}error-tag") == "operation-not-supported"
        assert error.findtext(f"{NC}error-type") == "protocol"
        assert info(error, "bad-element") == "frobnicate"
        assert client.rpc(GET_CONFIG, "2").find(f"{NC}data") is not None


# -- XML attacks: no entity is ever expanded or loaded ----------------------------------
def billion_laughs(levels: int = 10) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)
    ]
    return (
        f'<?xml version="1.0"?><!DOCTYPE rpc [{"".join(entities)}]>'
        f'<rpc message-id="1" xmlns="{NC_NS}"><edit-config><target><candidate/></target>'
        f'<config><serial-over-ip xmlns="{SOIP}"><serial-port><name>demo</name>'
        f"<description>&lol{levels - 1};</description></serial-port></serial-over-ip>"
        "</config></edit-config></rpc>"
    ).encode()


def test_billion_laughs_is_refused_quickly(daemon: Running) -> None:
    with session(daemon) as client:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        reply = client.request(billion_laughs(), timeout=2.0)
        assert time.monotonic() - started < 2.0
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown_kib < 100 * 1024  # 10**10 "lol"s would be tens of GiB
        # a document with a DTD is refused as malformed and the session survives
        assert error_tags(reply) == ["malformed-message"]
        assert b"lollol" not in etree.tostring(reply)
        candidate = client.rpc("<get-config><source><candidate/></source></get-config>")
        assert b"lol" not in data_text(candidate)


def test_external_entities_are_never_read(daemon: Running, tmp_path: Path) -> None:
    secret = "nf-secret-7f3a9c"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret + "\n")
    dtd_file = tmp_path / "evil.dtd"
    dtd_file.write_text(f'<!ENTITY leak "{secret}">')
    # include the secret file with XInclude too: never processed
    xinclude = (
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret_file.as_uri()}"'
        ' parse="text"/>'
    )

    def doc(prolog: str, text: str) -> bytes:
        return (prolog + rpc_xml(edit("candidate", port_description(text)), "x").decode()).encode()

    attacks = [
        doc(f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>', "&x;"),
        doc('<!DOCTYPE rpc [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"),
        doc(f'<!DOCTYPE rpc SYSTEM "{dtd_file.as_uri()}">', "&leak;"),
        doc(f'<!DOCTYPE rpc [<!ENTITY % p SYSTEM "{dtd_file.as_uri()}"> %p;]>', "&leak;"),
        doc("", "&leak;"),  # undeclared entity
        doc("", xinclude),
    ]
    replies: list[bytes] = []
    with session(daemon) as client:
        for attack in attacks:
            reply = client.request(attack)
            assert errors(reply), etree.tostring(reply)
            replies.append(etree.tostring(reply))
        for source in ("candidate", "running"):
            replies.append(
                etree.tostring(client.rpc(f"<get-config><source><{source}/></source></get-config>"))
            )
        replies.append(etree.tostring(client.rpc("<get/>")))
    everything = b"".join(replies)
    assert secret.encode() not in everything
    assert b"root:" not in everything
    assert b"/bin/" not in everything


# -- size limit ------------------------------------------------------------------------------
LIMIT = 4096


def small_limit_daemon(make_daemon: DaemonFactory) -> Running:
    running = make_daemon()
    server_of(running).max_message = LIMIT  # sessions take it when they start
    return running


def big_rpc(size: int) -> bytes:
    return rpc_xml(edit("candidate", port_description("x" * size)), "big")


def padded(size: int, message_id: str) -> bytes:
    """A get-config of exactly ``size`` bytes (blanks inside the <rpc> tag)."""
    message = rpc_xml(GET_CONFIG, message_id)
    message = message.replace(b"<rpc ", b"<rpc " + b" " * (size - len(message)), 1)
    assert len(message) == size
    return message


OVERSIZE = {
    "1.0, one byte over": (False, lambda m: frame_eom(padded(LIMIT + 1, "over"))),
    "1.1, one byte over": (True, lambda m: frame_chunks(padded(LIMIT + 1, "over"), [1000])),
    "1.0, whole message in one write": (False, lambda m: frame_eom(m)),
    "1.0, no end marker yet": (False, lambda m: m * 20),
    "1.1, one chunk": (True, lambda m: frame_chunks(m)),
    "1.1, many small chunks": (True, lambda m: frame_chunks(m, [500])),
    "1.1, header only": (True, lambda m: b"\n#4294967295\n"),
}


@pytest.mark.parametrize(("chunked", "framer"), OVERSIZE.values(), ids=OVERSIZE.keys())
def test_too_big_message_closes_session(
    make_daemon: DaemonFactory, chunked: bool, framer: Callable[[bytes], bytes]
) -> None:
    running = small_limit_daemon(make_daemon)
    caps = [BASE_11] if chunked else [BASE_10]
    with session(running, caps) as bystander, session(running, caps) as client:
        # at the limit exactly is fine
        assert client.request(padded(LIMIT, "fits")).get("message-id") == "fits"

        with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
            # the server may close while the rest of the message is on its way
            client.send(framer(big_rpc(2 * LIMIT)))
        reply = etree.fromstring(client.read_message())
        error = one_error(reply)
        assert error.findtext(f"{NC}error-tag") == "too-big"
        assert error.findtext(f"{NC}error-type") == "transport"
        client.wait_closed()
        assert wait_until(lambda: client.session_id not in server_of(running).session_ids())
        # the other session and new ones are unaffected
        assert bystander.rpc(GET_CONFIG, "still").get("message-id") == "still"
    assert_serves(running)
    with session(running) as check:
        got = check.rpc("<get-config><source><candidate/></source></get-config>")
        assert b"xxxx" not in data_text(got)


# -- isolation: one bad session never blocks the others ----------------------------------
def test_misbehaving_clients_do_not_block_others(daemon: Running) -> None:
    silent = socket.create_connection((daemon.host, daemon.port), timeout=5)  # no SSH at all
    unauthenticated = paramiko.Transport(socket.create_connection((daemon.host, daemon.port), 5))
    unauthenticated.start_client(timeout=5)  # SSH handshake done, never authenticates
    no_hello = connect(daemon)  # subsystem open, never sends a hello
    half_chunk = session(daemon)
    half_eom = session(daemon, [BASE_10])
    try:
        message = rpc_xml(GET_CONFIG, "half")
        half_chunk.send(b"\n#%d\n%s" % (len(message), message[: len(message) // 2]))
        half_eom.send(message[: len(message) // 2])
        started = time.monotonic()
        with session(daemon) as third:
            reply = third.rpc(GET_CONFIG, "third")
            assert reply.find(f"{NC}data") is not None
        assert time.monotonic() - started < 2.0
        # and the slow ones were only waiting: they finish their messages now
        half_chunk.send(message[len(message) // 2 :] + b"\n##\n")
        assert etree.fromstring(half_chunk.read_message()).get("message-id") == "half"
        half_eom.send(message[len(message) // 2 :] + EOM)
        assert etree.fromstring(half_eom.read_message()).get("message-id") == "half"
    finally:
        for client in (half_eom, half_chunk, no_hello):
            client.close()
        unauthenticated.close()
        silent.close()
    assert no_sessions(daemon)


# -- authentication --------------------------------------------------------------------------
def test_wrong_password_is_refused_and_logged(
    daemon: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOG)
    with pytest.raises(paramiko.AuthenticationException) as wrong:
        connect(daemon, password="not-the-password-1")
    with pytest.raises(paramiko.AuthenticationException) as unknown:
        connect(daemon, username="nobody", password="not-the-password-2")
    # a wrong password and an unknown user look the same to the client
    assert type(wrong.value) is type(unknown.value)
    assert str(wrong.value) == str(unknown.value)
    assert not isinstance(wrong.value, paramiko.BadAuthenticationType)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == SERVER_LOG and r.levelno == logging.WARNING
    ]
    assert any("'admin'" in w for w in warnings), warnings
    assert any("'nobody'" in w for w in warnings), warnings
    assert "not-the-password" not in caplog.text  # passwords are never logged
    assert server_of(daemon).session_ids() == []
    assert_serves(daemon)


@pytest.mark.parametrize(
    "generate",
    [lambda: paramiko.ECDSAKey.generate(bits=256), lambda: paramiko.RSAKey.generate(2048)],
    ids=["ecdsa", "rsa"],
)
def test_public_key_authentication(daemon: Running, generate: Callable[[], paramiko.PKey]) -> None:
    key = generate()
    stranger = generate()
    daemon.daemon.users.add_key(daemon.username, f"{key.get_name()} {key.get_base64()} test")
    with connect(daemon, pkey=key, password=None) as client:
        client.hello()
        assert client.rpc(GET_CONFIG).find(f"{NC}data") is not None
    with pytest.raises(paramiko.AuthenticationException):
        connect(daemon, pkey=stranger, password=None)
    with pytest.raises(paramiko.AuthenticationException):  # the key is admin's only
        connect(daemon, username="somebody", pkey=key, password=None)


# -- concurrency -------------------------------------------------------------------------------
def run_parallel(functions: Sequence[Callable[[], object]], timeout: float = 20.0) -> list[object]:
    with ThreadPoolExecutor(max_workers=len(functions)) as pool:
        futures = [pool.submit(f) for f in functions]
        return [f.result(timeout=timeout) for f in futures]


@pytest.mark.parametrize("target", ["candidate", "running"])
def test_lock_race_has_exactly_one_winner(daemon: Running, target: str) -> None:
    with session(daemon) as a, session(daemon) as b:
        clients = {a.session_id: a, b.session_id: b}
        for round_ in range(10):
            barrier = threading.Barrier(2, timeout=5)

            def attempt(
                client: RawClient, barrier: threading.Barrier = barrier, mid: str = f"lock-{round_}"
            ) -> etree._Element:
                barrier.wait()
                return client.rpc(lock(target), mid)

            results = run_parallel([lambda c=c: attempt(c) for c in clients.values()])
            replies: dict[int | None, etree._Element] = dict(
                zip(clients, results, strict=True)  # type: ignore[arg-type]
            )
            winners = [sid for sid, r in replies.items() if is_ok(r)]
            assert len(winners) == 1, replies
            winner = winners[0]
            (loser,) = set(clients) - {winner}
            error = one_error(replies[loser])
            assert error.findtext(f"{NC}error-tag") == "lock-denied"
            assert info(error, "session-id") == str(winner)
            # the loser can neither edit nor unlock the locked datastore
            refused = clients[loser].rpc(edit(target, port_description(f"loser-{round_}")))
            assert error_tags(refused) == ["in-use"]
            assert error_tags(clients[loser].rpc(unlock(target))) == ["operation-failed"]
            assert is_ok(clients[winner].rpc(unlock(target)))
    assert b"loser" not in etree.tostring(running_config(daemon))


def test_lock_edit_commit_loses_no_update(daemon: Running) -> None:
    rounds = 4
    denied: list[int] = []

    def worker(body: Callable[[str], str], who: str) -> None:
        with session(daemon) as client:
            for i in range(rounds):
                deadline = time.monotonic() + 10
                while True:
                    reply = client.rpc(lock("candidate"), f"{who}-lock")
                    if is_ok(reply):
                        break
                    assert error_tags(reply) == ["lock-denied"], etree.tostring(reply)
                    denied.append(1)
                    assert time.monotonic() < deadline, "never got the lock"
                    time.sleep(0.005)
                for step in (
                    edit("candidate", body(f"{who}-{i}")),
                    "<commit/>",
                    unlock("candidate"),
                ):
                    reply = client.rpc(step, f"{who}-{i}")
                    assert is_ok(reply), etree.tostring(reply)

    run_parallel([lambda: worker(port_description, "A"), lambda: worker(channel_description, "B")])
    data = running_config(daemon)
    assert leaf(data, "soip:serial-over-ip/soip:serial-port/soip:description") == f"A-{rounds - 1}"
    assert leaf(data, "soip:serial-over-ip/soip:channel/soip:description") == f"B-{rounds - 1}"
    assert no_sessions(daemon)


def test_concurrent_edits_of_running_lose_no_update(daemon: Running) -> None:
    rounds = 5
    barrier = threading.Barrier(2, timeout=5)

    def worker(body: Callable[[str], str], who: str) -> None:
        with session(daemon) as client:
            barrier.wait()
            for i in range(rounds):
                reply = client.rpc(edit("running", body(f"{who}-{i}")), f"{who}-{i}")
                assert is_ok(reply), etree.tostring(reply)

    run_parallel([lambda: worker(port_description, "A"), lambda: worker(channel_description, "B")])
    data = running_config(daemon)
    assert leaf(data, "soip:serial-over-ip/soip:serial-port/soip:description") == f"A-{rounds - 1}"
    assert leaf(data, "soip:serial-over-ip/soip:channel/soip:description") == f"B-{rounds - 1}"


def test_lock_released_when_the_holder_drops(daemon: Running) -> None:
    with session(daemon) as other:
        holder = session(daemon)
        assert is_ok(holder.rpc(lock("running")))
        assert error_tags(other.rpc(lock("running"))) == ["lock-denied"]
        holder.close()  # transport loss, no close-session
        assert wait_until(lambda: is_ok(other.rpc(lock("running"))))


def test_twenty_parallel_gets(daemon: Running) -> None:
    count = 20
    barrier = threading.Barrier(count, timeout=15)

    def one(i: int) -> int | None:
        with session(daemon) as client:
            barrier.wait()
            reply = client.rpc("<get/>", f"get-{i}")
            assert reply.get("message-id") == f"get-{i}"
            assert b"<name>demo</name>" in data_text(reply)
            return client.session_id

    started = time.monotonic()
    ids = run_parallel([lambda i=i: one(i) for i in range(count)], timeout=30)
    assert time.monotonic() - started < 30
    assert len(set(ids)) == count and None not in ids
    assert no_sessions(daemon)


def test_closed_connection_mid_message_ends_session(daemon: Running) -> None:
    client = session(daemon)
    client.send(b"\n#100\n<rpc")
    client.close()
    assert no_sessions(daemon)
    assert_serves(daemon)


def test_close_session_ends_the_session(daemon: Running) -> None:
    with session(daemon) as client:
        reply = client.rpc("<close-session/>")
        assert is_ok(reply)
        assert client.wait_closed() == b""
    assert no_sessions(daemon)


def test_reading_after_close_is_bounded(daemon: Running) -> None:
    """The raw client itself never hangs: a read on a dead connection fails fast."""
    client = session(daemon)
    client.rpc("<close-session/>")
    started = time.monotonic()
    with pytest.raises(Closed):
        client.read_message(timeout=3)
    assert time.monotonic() - started < 3
    client.close()
