"""A seeded NETCONF fuzzer against the daemon (the issue's point 1).

For NF_FUZZ_SECONDS (default 10: the run of tools/test.sh and CI; set 60 or
more for a soak) it sends messages made by ``random.Random``
from NF_FUZZ_SEED (default below; the test prints the seed it used) over
raw sessions in both framings: valid rpcs of every base operation with
parameters and configuration subtrees built from the compiled schema,
mutations of them (byte flips, truncation, duplicated and removed elements,
wrong namespaces, huge texts, deep nesting, odd attributes, encodings and
BOMs, CDATA, comments, PIs, entities, DTDs, odd chunking) and abusive ones
(huge values, many siblings, many errors, deep nesting).  Broken chunk
framing is sent too: the session must then close, promptly.

Oracles, each a finding that names the case's bytes:

* every framed message gets one reply within REPLY_LIMIT of its last byte that parses as
  XML and is an <rpc-reply> in the base namespace with <ok/>, <data> or
  <rpc-error>s whose error-tag is one of RFC 6241's and error-type one of
  transport, rpc, protocol, application; and no "internal error";
* a well-formed <rpc> with a message-id gets its message-id back; a
  message that is not well-formed gets malformed-message, and the session
  goes on;
* a monitor session's get-config, every PROBE_EVERY, answers within
  PROBE_LIMIT throughout;
* the daemon logs no traceback, is alive at the end, its running
  configuration validates, and it stops on SIGTERM.

The daemon runs in a child process with the NullRuntime (``nfproc``): a
frozen daemon must not freeze the fuzzer's clock, and made-up
configurations must not open sockets.
"""

from __future__ import annotations

import codecs
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest
from lxml import etree
from nfproc import ChildDaemon, child_daemon
from rawclient import (
    EOM,
    ERROR_TAGS,
    GET_CONFIG,
    NC,
    NC_NS,
    Closed,
    FramingError,
    RawClient,
    error_tags,
    frame_chunks,
    frame_eom,
)

from nf.schema import SchemaNode, default_schema

# tools/test.sh runs the timing tests apart from the rest, two at a time
# but never two of the group "busy" (which each keep a CPU busy) at once
pytestmark = [pytest.mark.timing, pytest.mark.xdist_group("busy")]

SEED = int(os.environ.get("NF_FUZZ_SEED", "6241"))
SECONDS = float(os.environ.get("NF_FUZZ_SECONDS", "10"))
REPLY_LIMIT = 2.0
PROBE_EVERY = 0.5
PROBE_LIMIT = 1.0
MAX_FINDINGS = 8
"""Stop early after this many: one freeze tends to cause the rest."""
SHOW = 600
"""Bytes of a case's message shown in a finding."""

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
WD_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
ERROR_TYPES = frozenset({"transport", "rpc", "protocol", "application"})
SCHEMA = default_schema()
TOPS = [n for n in SCHEMA.root.children.values() if n.config]
ALL_TOPS = list(SCHEMA.root.children.values())


# -- valid messages from the schema ------------------------------------------------------


def _value(rng: random.Random, node: SchemaNode) -> str:
    """A value of the leaf's type, now and then a wrong one."""
    leaf_type = node.type
    if rng.random() < 0.1 or leaf_type is None:
        return rng.choice(["", "x", "-1", "99999999999999999999", "not valid", "é", "demo"])
    if leaf_type.enums:
        return rng.choice(leaf_type.enums)
    base = leaf_type.base
    if base == "boolean":
        return rng.choice(["true", "false"])
    if base.startswith(("uint", "int", "decimal")):
        return str(rng.choice([0, 1, 2, 7, 255, 1000, 8301, 65535, rng.randrange(0, 100000)]))
    if base == "leafref":
        return rng.choice(["demo", "p0", "p1", "c0"])
    if "address" in leaf_type.name or "prefix" in leaf_type.name:
        return rng.choice(["127.0.0.1", "::1", "0.0.0.0", "127.0.0.0/8", "224.1.1.1", "::"])
    if node.name == "device":
        return rng.choice(["loop://", "/dev/ttyS0", "/dev/null"])
    return rng.choice(["demo", "p0", "p1", "c0", "a.b-c_d", "admin", "*", "x" * rng.randrange(40)])


def _subtree(
    rng: random.Random, node: SchemaNode, parent: etree._Element, depth: int, ops: bool
) -> None:
    """Append a random instance of ``node`` (config nodes only) to ``parent``."""
    if not node.config:
        return
    tag = f"{{{node.namespace}}}{node.name}"
    if node.keyword in ("leaf", "leaf-list"):
        for _ in range(1 if node.keyword == "leaf" else rng.randrange(0, 3)):
            etree.SubElement(parent, tag).text = _value(rng, node)
        return
    count = rng.randrange(0, 3) if node.keyword == "list" else 1
    for _ in range(count):
        elem = etree.SubElement(parent, tag)
        if ops and rng.random() < 0.15:
            op = rng.choice(["merge", "replace", "create", "delete", "remove"])
            elem.set(f"{NC}operation", op)
        keys = [node.children[k] for k in node.keys if k in node.children]
        for key in keys:
            etree.SubElement(elem, f"{{{key.namespace}}}{key.name}").text = _value(rng, key)
        if depth <= 0:
            continue
        for child in node.children.values():
            if child in keys or rng.random() < 0.5:
                continue
            _subtree(rng, child, elem, depth - 1, ops)


def _config_xml(rng: random.Random, ops: bool = True, wrapper: str = "config") -> str:
    root = etree.Element(f"{NC}{wrapper}", nsmap={"nc": NC_NS})  # type: ignore[dict-item]
    for top in TOPS:
        if top.namespace == SOIP or rng.random() < 0.2:
            _subtree(rng, top, root, rng.randrange(1, 5), ops)
    return etree.tostring(root).decode()


def _subtree_filter(rng: random.Random) -> str:
    root = etree.Element("filter", type="subtree")
    node = rng.choice(ALL_TOPS)
    elem = etree.SubElement(root, f"{{{node.namespace}}}{node.name}")
    for _ in range(rng.randrange(0, 4)):
        if not node.children:
            break
        child = rng.choice(list(node.children.values()))
        sub = etree.SubElement(elem, f"{{{child.namespace}}}{child.name}")
        if child.keyword in ("leaf", "leaf-list") and rng.random() < 0.5:
            sub.text = _value(rng, child)  # a content match node
        elif rng.random() < 0.6:
            node, elem = child, sub
    return etree.tostring(root).decode()


def _xpath_filter(rng: random.Random) -> str:
    node = rng.choice(ALL_TOPS)
    steps = [f"{SCHEMA.prefixes[node.namespace]}:{node.name}"]
    for _ in range(rng.randrange(0, 4)):
        if not node.children:
            break
        node = rng.choice(list(node.children.values()))
        step = f"{SCHEMA.prefixes[node.namespace]}:{node.name}"
        if node.keys and rng.random() < 0.5:
            key = node.keys[0][1]
            step += f"[{SCHEMA.prefixes[node.namespace]}:{key}='{_value(rng, node)}']"
        steps.append(step)
    select = rng.choice(["/", "//"]) + "/".join(steps)
    if rng.random() < 0.1:
        select = rng.choice(["/*", "//.", "count(/*)", "/soip:serial-over-ip | /nacm:nacm", "]["])
    decls = " ".join(f'xmlns:{p}="{ns}"' for ns, p in SCHEMA.prefixes.items())
    return f'<filter type="xpath" {decls} select="{select}"/>'


def _filter(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return ""
    return _subtree_filter(rng) if roll < 0.7 else _xpath_filter(rng)


def _with_defaults(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ""
    mode = rng.choice(["report-all", "trim", "explicit", "report-all-tagged", "bogus"])
    return f'<with-defaults xmlns="{WD_NS}">{mode}</with-defaults>'


def _store(rng: random.Random, *names: str) -> str:
    return f"<{rng.choice(names)}/>"


def valid_body(rng: random.Random) -> str:
    """One base or module operation with random (mostly sensible) parameters."""
    op = rng.choice(
        [
            "get-config",
            "get-config",
            "get",
            "edit-config",
            "edit-config",
            "edit-config",
            "validate",
            "commit",
            "cancel-commit",
            "discard-changes",
            "copy-config",
            "delete-config",
            "lock",
            "unlock",
            "kill-session",
            "get-schema",
            "create-subscription",
            "clear-counters",
            "close-session",
        ]
    )
    if op == "get-config":
        source = _store(rng, "running", "candidate", "startup")
        return (
            f"<get-config><source>{source}</source>{_filter(rng)}{_with_defaults(rng)}</get-config>"
        )
    if op == "get":
        return f"<get>{_filter(rng)}{_with_defaults(rng)}</get>"
    if op == "edit-config":
        parts = [f"<target>{_store(rng, 'running', 'candidate')}</target>"]
        if rng.random() < 0.3:
            parts.append(
                f"<default-operation>{rng.choice(['merge', 'replace', 'none'])}</default-operation>"
            )
        if rng.random() < 0.3:
            test = rng.choice(["test-then-set", "set", "test-only"])
            parts.append(f"<test-option>{test}</test-option>")
        if rng.random() < 0.3:
            option = rng.choice(["stop-on-error", "continue-on-error", "rollback-on-error"])
            parts.append(f"<error-option>{option}</error-option>")
        parts.append(_config_xml(rng))
        return f"<edit-config>{''.join(parts)}</edit-config>"
    if op == "validate":
        source = (
            _config_xml(rng, ops=False)
            if rng.random() < 0.4
            else _store(rng, "running", "candidate", "startup")
        )
        return f"<validate><source>{source}</source></validate>"
    if op == "commit":
        if rng.random() < 0.3:
            timeout = rng.choice([1, 2, 600])
            return f"<commit><confirmed/><confirm-timeout>{timeout}</confirm-timeout></commit>"
        return "<commit/>"
    if op == "copy-config":
        target = _store(rng, "running", "candidate", "startup")
        source = (
            _config_xml(rng, ops=False)
            if rng.random() < 0.5
            else _store(rng, "running", "candidate", "startup")
        )
        return f"<copy-config><target>{target}</target><source>{source}</source></copy-config>"
    if op == "delete-config":
        target = _store(rng, "startup", "candidate", "running")
        return f"<delete-config><target>{target}</target></delete-config>"
    if op in ("lock", "unlock"):
        return f"<{op}><target>{_store(rng, 'running', 'candidate', 'startup')}</target></{op}>"
    if op == "kill-session":
        # never a live session but the caller's own: others are the monitor's
        sid = rng.choice(["0", "999999", "-1", "abc", "4294967295", ""])
        return f"<kill-session><session-id>{sid}</session-id></kill-session>"
    if op == "get-schema":
        ident = rng.choice(["nf-serial-over-ip", "ietf-netconf-acm", "nope", ""])
        return f'<get-schema xmlns="{NCM}"><identifier>{ident}</identifier></get-schema>'
    if op == "create-subscription":
        stream = rng.choice(["", "<stream>NETCONF</stream>", "<stream>nope</stream>"])
        return f'<create-subscription xmlns="{NOTIF_NS}">{stream}</create-subscription>'
    if op == "clear-counters":
        return f'<clear-counters xmlns="{SOIP}"/>'
    return "<close-session/>"


def _message_id(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.8:
        return str(rng.randrange(1, 10**6))
    if roll < 0.85:
        return None
    return rng.choice(["", "a b", "&lt;&amp;&quot;", "ü€𝄞", "x" * 5000, "-1", " 7 "])


def rpc_message(rng: random.Random, body: str) -> bytes:
    mid = _message_id(rng)
    attr = "" if mid is None else f' message-id="{mid}"'
    return f'<rpc xmlns="{NC_NS}"{attr}>{body}</rpc>'.encode()


# -- mutations ---------------------------------------------------------------------------


def _flip(rng: random.Random, msg: bytes) -> bytes:
    data = bytearray(msg)
    for _ in range(rng.randrange(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _truncate(rng: random.Random, msg: bytes) -> bytes:
    return msg[: rng.randrange(len(msg))]


def _tree_mutation(rng: random.Random, msg: bytes) -> bytes:
    """Duplicate, remove, rename or re-namespace one element."""
    root = etree.fromstring(msg)
    elems = list(root.iter())
    target = rng.choice(elems)
    action = rng.choice(["dup", "remove", "ns", "rename", "text", "attr"])
    parent = target.getparent()
    if action == "dup" and parent is not None:
        for _ in range(rng.choice([1, 2, 50])):
            parent.append(etree.fromstring(etree.tostring(target)))
    elif action == "remove" and parent is not None:
        parent.remove(target)
    elif action == "ns":
        ns = rng.choice(["", "urn:bogus", SOIP, NC_NS, NACM])
        local = etree.QName(target).localname
        target.tag = f"{{{ns}}}{local}" if ns else local
    elif action == "rename":
        target.tag = etree.QName(etree.QName(target).namespace, rng.choice(["x", "rpc", "config"]))
    elif action == "text":
        target.text = rng.choice(["", " ", "\t\n", "x" * 70000, "0" * 300, "<>&"])
    else:
        name = rng.choice(["x", f"{{{NC_NS}}}operation", f"{{{NC_NS}}}x", "{urn:z}a", "type"])
        target.set(name, rng.choice(["", "delete", "merge", "y" * 10000]))
    return etree.tostring(root)


def _decorate(rng: random.Random, msg: bytes) -> bytes:
    """Well-formed decorations: declaration, BOM, comments, PIs, CDATA, references."""
    text = msg.decode("utf-8", "replace")
    choice = rng.choice(["decl", "bom", "comment", "pi", "cdata", "charref", "utf16", "latin1"])
    if choice == "decl":
        return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + msg
    if choice == "bom":
        return codecs.BOM_UTF8 + msg
    if choice == "comment":
        return msg.replace(b">", b"><!-- comment -->", 1)
    if choice == "pi":
        return msg.replace(b">", b"><?nf do this?>", 2)
    if choice == "cdata":
        return text.replace("<running/>", "<running><![CDATA[x]]></running>", 1).encode()
    if choice == "charref":
        return text.replace("demo", "&#100;&#x65;mo").encode()
    if choice == "utf16":
        return ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode("utf-16")
    return ('<?xml version="1.0" encoding="ISO-8859-1"?>' + text).encode("utf-8")


def _hostile(rng: random.Random, msg: bytes) -> bytes:
    """Not well-formed, or carrying a DTD or unknown entities."""
    choice = rng.choice(["entity", "dtd", "laughs", "external", "junk", "two-roots", "nul"])
    if choice == "entity":
        return msg.replace(b"<rpc ", b"<rpc a='&foo;' ", 1)
    if choice == "dtd":
        return b'<!DOCTYPE rpc [<!ENTITY e "demo">]>' + msg
    if choice == "laughs":
        ents = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
        dtd = f'<!DOCTYPE rpc [<!ENTITY l0 "lol">{ents}]>'
        return dtd.encode() + msg.replace(b"</rpc>", b"<x>&l9;</x></rpc>")
    if choice == "external":
        return b'<!DOCTYPE rpc SYSTEM "file:///etc/passwd">' + msg
    if choice == "junk":
        return rng.choice([b"", b" ", b"hello", b"<", b"<rpc>", b"\xff\xfe\x00"])
    if choice == "two-roots":
        return msg + msg
    return msg.replace(b">", b">\x00", 1)


def _abusive(rng: random.Random) -> bytes:
    """One message that costs a naive server dearly."""
    size = rng.choice([10_000, 100_000, 1_000_000])
    choice = rng.choice(["name", "key", "xpath", "subtree", "siblings", "deep", "errors", "attrs"])
    y = "y" * size
    edit = (
        '<edit-config><target><candidate/></target><config><serial-over-ip xmlns="'
        + SOIP
        + '">{}</serial-over-ip></config></edit-config>'
    )
    if choice == "name":
        body = edit.format(f"<serial-port><name>{y}</name><device>/dev/x</device></serial-port>")
    elif choice == "key":
        body = edit.format(f"<channel><name>{y}</name></channel>")
    elif choice == "xpath":
        body = (
            f'<get-config><source><running/></source><filter type="xpath" xmlns:soip="{SOIP}" '
            f"select=\"/soip:serial-over-ip/soip:channel[soip:name='{y}']\"/></get-config>"
        )
    elif choice == "subtree":
        body = (
            f'<get-config><source><running/></source><filter type="subtree">'
            f'<serial-over-ip xmlns="{SOIP}"><channel><name>{y}</name></channel>'
            "</serial-over-ip></filter></get-config>"
        )
    elif choice == "siblings":
        body = edit.format("<description>d</description>" * (size // 10))
    elif choice == "deep":
        depth = rng.choice([300, 1000, 10_000])
        body = edit.format("<channel>" * depth + "</channel>" * depth)
    elif choice == "errors":
        body = edit.format("".join(f"<bogus{i}/>" for i in range(size // 10)))
    else:
        attrs = " ".join(f'a{i}="{i}"' for i in range(size // 10))
        body = f"<get-config {attrs}><source><running/></source></get-config>"
    return rpc_message(rng, body)


# -- sessions, oracle, monitor -----------------------------------------------------------


@dataclass
class Finding:
    case: int
    what: str
    message: bytes

    def __str__(self) -> str:
        shown = self.message[:SHOW]
        more = f" ... ({len(self.message)} bytes)" if len(self.message) > SHOW else ""
        return f"case {self.case}: {self.what}\n    message: {shown!r}{more}"


@dataclass
class Fuzz:
    daemon: ChildDaemon
    rng: random.Random
    findings: list[Finding] = field(default_factory=list)
    case: int = 0
    replies: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def find(self, what: str, message: bytes) -> None:
        self.findings.append(Finding(self.case, what, message))

    def session(self, chunked: bool) -> RawClient:
        return self.daemon.client(chunked, timeout=REPLY_LIMIT + 3)


def _well_formed(message: bytes) -> etree._Element | None:
    """Our own verdict: is the message well-formed XML (any depth or size)?"""
    parser = etree.XMLParser(
        resolve_entities=False, load_dtd=False, no_network=True, huge_tree=True
    )
    try:
        return etree.fromstring(message, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None


def _may_close(message: bytes) -> bool:
    """Whether the message is (or might be taken for) a close-session, in any encoding."""
    if b"close-session" in message:
        return True
    root = _well_formed(message)
    return root is not None and any(
        isinstance(e.tag, str) and etree.QName(e).localname == "close-session" for e in root.iter()
    )


def _read_reply(client: RawClient) -> bytes:
    """The next message that is not a notification."""
    deadline = time.monotonic() + REPLY_LIMIT
    while True:
        raw = client.read_message(timeout=max(0.01, deadline - time.monotonic()))
        if b"<notification" not in raw[:300]:
            return raw


def check_reply(fuzz: Fuzz, message: bytes, raw: bytes) -> None:
    """Apply the reply oracles to one reply."""
    try:
        reply = etree.fromstring(raw)
    except etree.XMLSyntaxError as exc:
        fuzz.find(f"reply is not XML ({exc}): {raw[:300]!r}", message)
        return
    if reply.tag != f"{NC}rpc-reply":
        fuzz.find(f"reply is <{reply.tag}>, not rpc-reply: {raw[:300]!r}", message)
        return
    sent = _well_formed(message)
    tags = error_tags(reply)
    if sent is None and tags != ["malformed-message"]:
        fuzz.find(f"not well-formed, but reply has {tags}: {raw[:300]!r}", message)
    # a DTD is refused before the message-id is read; any other <rpc> gets its own
    has_dtd = sent is not None and sent.getroottree().docinfo.internalDTD is not None
    mid = None if sent is None or sent.tag != f"{NC}rpc" else sent.get("message-id")
    if mid is not None and not has_dtd and reply.get("message-id") != mid:
        got = (reply.get("message-id") or "")[:80]
        fuzz.find(f"message-id not echoed (got {got!r}): {raw[:300]!r}", message)
    body = [c for c in reply if isinstance(c.tag, str)]
    kinds = {c.tag for c in body}
    if not body or not kinds <= {f"{NC}ok", f"{NC}data", f"{{{NCM}}}data", f"{NC}rpc-error"}:
        fuzz.find(f"reply holds {sorted(kinds)}: {raw[:300]!r}", message)
    for error in reply.iterfind(f"{NC}rpc-error"):
        tag = error.findtext(f"{NC}error-tag")
        kind = error.findtext(f"{NC}error-type")
        text = error.findtext(f"{NC}error-message") or ""
        if tag not in ERROR_TAGS or kind not in ERROR_TYPES:
            fuzz.find(f"error-tag {tag!r} / error-type {kind!r}", message)
        if "internal error" in text:
            fuzz.find(f"internal error: {text[:300]}", message)


def _closes(client: RawClient) -> bool:
    try:
        client.wait_closed(timeout=REPLY_LIMIT)
        return True
    except (TimeoutError, OSError):
        return False


BAD_FRAMES = [
    b"\n#abc\n",
    b"\n#0\n",
    b"#5\nhello\n##\n",
    b"\n#99999999999\n",
    b"\n#4\nabcd\n#x\n",
    b"\n##\n",
]


def monitor(fuzz: Fuzz, stop: threading.Event, worst: list[float]) -> None:
    """Probe get-config on its own session every PROBE_EVERY."""
    client = fuzz.daemon.client(True, timeout=REPLY_LIMIT * 5)
    n = 0
    try:
        while not stop.wait(PROBE_EVERY):
            n += 1
            start = time.monotonic()
            try:
                reply = client.rpc(GET_CONFIG, f"m{n}")
                ok = reply.get("message-id") == f"m{n}" and not error_tags(reply)
            except Exception as exc:
                fuzz.find(f"monitor get-config failed: {exc!s:.200}", b"")
                return
            seconds = time.monotonic() - start
            worst.append(seconds)
            if not ok:
                fuzz.find("monitor get-config answered with an error", b"")
            if seconds > PROBE_LIMIT:
                fuzz.find(f"monitor get-config took {seconds:.2f} s (around this case)", b"")
    finally:
        client.close()


def bad_frame(fuzz: Fuzz, sessions: dict[bool, RawClient], frame: bytes) -> None:
    """Broken chunked framing: the session must close within REPLY_LIMIT."""
    fuzz.kinds["bad-frame"] = fuzz.kinds.get("bad-frame", 0) + 1
    client = sessions[True]
    client.send(frame)
    if not _closes(client):
        fuzz.find("broken chunk framing: session still open", frame)
    client.close()
    sessions[True] = fuzz.session(True)


def one_case(fuzz: Fuzz, sessions: dict[bool, RawClient]) -> None:
    """Make, send and check one case on a session of a random framing."""
    rng = fuzz.rng
    chunked = rng.random() < 0.6
    client = sessions[chunked]
    roll = rng.random()
    makers: list[tuple[str, Callable[[random.Random, bytes], bytes]]] = [
        ("flip", _flip),
        ("truncate", _truncate),
        ("tree", _tree_mutation),
        ("decorate", _decorate),
        ("hostile", _hostile),
    ]
    if chunked and roll < 0.03:
        frame = rng.choice(BAD_FRAMES)
        bad_frame(fuzz, sessions, frame)
        return
    if roll < 0.5:
        kind, message = "valid", rpc_message(rng, valid_body(rng))
    elif roll < 0.88:
        kind, mutate = rng.choice(makers)
        message = mutate(rng, rpc_message(rng, valid_body(rng)))
    else:
        kind, message = "abusive", _abusive(rng)
    fuzz.kinds[kind] = fuzz.kinds.get(kind, 0) + 1
    if not chunked and EOM in message:
        return  # cannot be framed as one end-of-message message
    if chunked and not message:
        bad_frame(fuzz, sessions, frame_chunks(message))  # a chunk of size 0
        return
    if chunked and rng.random() < 0.2:
        framed = frame_chunks(message, [rng.choice([1, 7, 100, 4096])])
    else:
        framed = frame_chunks(message) if chunked else frame_eom(message)
    try:
        client.send(framed)
        # The reply is timed from the last byte sent: a 2.8 MB message in
        # 1-byte chunks is 14 MB on the wire, and this process's own SSH
        # encryption of it takes 1.5 s.  The server cannot fall further
        # behind than the SSH window while the client sends, so its lag
        # after the send is what it costs.
        start = time.monotonic()
        raw = _read_reply(client)
    except TimeoutError:
        fuzz.find(f"no reply within {REPLY_LIMIT} s (base:1.{int(chunked)})", message)
        client.close()
        sessions[chunked] = fuzz.session(chunked)
        return
    except (Closed, FramingError, OSError, EOFError) as exc:
        if not _may_close(message):
            fuzz.find(f"session ended: {exc!s:.200}", message)
        client.close()
        sessions[chunked] = fuzz.session(chunked)
        return
    fuzz.replies += 1
    seconds = time.monotonic() - start
    if seconds > REPLY_LIMIT:
        fuzz.find(f"reply took {seconds:.2f} s", message)
    check_reply(fuzz, message, raw)
    if _may_close(message):  # it may have ended the session: start afresh
        client.close()
        sessions[chunked] = fuzz.session(chunked)


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 180)
def test_fuzz_netconf(tmp_path: Path) -> None:
    print(f"NF_FUZZ_SEED={SEED} NF_FUZZ_SECONDS={SECONDS:g}")
    with child_daemon(tmp_path) as daemon:
        fuzz = Fuzz(daemon, random.Random(SEED))
        stop = threading.Event()
        worst: list[float] = []
        probe = threading.Thread(target=monitor, args=(fuzz, stop, worst), daemon=True)
        probe.start()
        sessions = {True: fuzz.session(True), False: fuzz.session(False)}
        deadline = time.monotonic() + SECONDS
        try:
            while time.monotonic() < deadline and len(fuzz.findings) < MAX_FINDINGS:
                fuzz.case += 1
                try:
                    one_case(fuzz, sessions)
                except (OSError, EOFError, Closed, paramiko.SSHException) as exc:  # no new session
                    fuzz.find(f"cannot open a session: {exc!s:.200}", b"")
                    break
        finally:
            stop.set()
            probe.join(REPLY_LIMIT * 5 + 1)
            for client in sessions.values():
                client.close()
        print(
            f"{fuzz.case} cases, {fuzz.replies} replies, kinds {fuzz.kinds}, "
            f"monitor worst {max(worst, default=0):.3f} s over {len(worst)} probes"
        )
        alive = daemon.alive()
        if alive:
            try:
                with daemon.client(True, timeout=10) as check:
                    reply = check.rpc("<validate><source><running/></source></validate>", "end")
                    if error_tags(reply):
                        fuzz.find(
                            f"running does not validate: {etree.tostring(reply)[:500]!r}", b""
                        )
            except Exception as exc:
                fuzz.find(f"no session after the fuzzing: {exc!s:.200}", b"")
        else:
            fuzz.find(f"daemon died with {daemon.proc.returncode}", b"")
        if alive and not daemon.stop():
            fuzz.find("SIGTERM did not stop the daemon within 5 s", b"")
        log = daemon.log()
        for line in log.splitlines():
            # paramiko logs a peer's reset at ERROR: the fuzzer closes abruptly
            if "Traceback" in line or " ERROR nf" in line or " CRITICAL " in line:
                fuzz.find(f"daemon log: {line[:300]}", b"")
                break
        if fuzz.findings:
            report = "\n".join(str(f) for f in fuzz.findings[:12])
            pytest.fail(
                f"seed {SEED}: {len(fuzz.findings)} findings\n{report}\n"
                f"--- daemon log (tail) ---\n{log[-3000:]}",
                pytrace=False,
            )
