"""NETCONF over TLS (RFC 7589, issue 15 points 2 and 4).

The certificate-to-name map on its own (pure), the transport file, and the
daemon with a real TLS listener driven by ncclient's ``connect_tls`` with
certificates made in the test (tests/pki.py): a mapped client is served,
an unknown, expired or unmapped one is refused, NACM applies to the mapped
user, a client that never finishes its handshake holds nobody up, and no
key material reaches the log or ``<get>``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import ssl
import time
import warnings
from pathlib import Path

import pytest
from conftest import DaemonFactory, Running, add_user
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from ncclient import manager
from ncclient.operations.rpc import RPCError
from pki import DAY, NOW, Issued, Pki, client_context, entry, issue

from nf.northbound import transports
from nf.northbound.certname import Entry, Fingerprint, issuers, map_to_name
from nf.northbound.throttle import Policy

NC = "{urn:ietf:params:xml:ns:netconf:base:1.0}"
MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
TLS_LOG = "nf.northbound.tls"


# -- the map, pure -------------------------------------------------------------------
def test_fingerprint_parses_the_tls_fingerprint_format(tmp_path: Path) -> None:
    cert = issue(tmp_path, "c")
    text = cert.fingerprint()
    assert text.startswith("04:") and len(text.split(":")) == 33
    parsed = Fingerprint.parse(text.upper())
    assert parsed.matches(cert.der)
    assert str(parsed) == text
    sha1 = Fingerprint.parse(cert.fingerprint(2))
    assert sha1.algorithm == 2 and sha1.matches(cert.der)
    other = issue(tmp_path, "other")
    assert not parsed.matches(other.der)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a tls-fingerprint"),
        ("04", "not a tls-fingerprint"),
        ("04:zz:01", "not a tls-fingerprint"),
        ("04:1:02", "not a tls-fingerprint"),
        ("09:" + ":".join(["ab"] * 32), "hash algorithm 9 is not one of"),
        ("04:" + ":".join(["ab"] * 20), "a sha256 hash has 32 octets, not 20"),
    ],
)
def test_bad_fingerprints_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fingerprint.parse(text)


def test_map_types_and_order(tmp_path: Path) -> None:
    ca = issue(tmp_path, "ca", ca=True)
    alice = issue(tmp_path, "alice-cn", ca, email="alice@example.net")
    bob = issue(tmp_path, "bob-cn", ca)  # no e-mail SAN
    ca_fp = Fingerprint.parse(ca.fingerprint())
    by_ca = [
        Entry(20, ca_fp, "common-name"),
        Entry(10, ca_fp, "san-rfc822-name"),  # tried first (lower id)
    ]
    chain_a = issuers(alice.cert, [ca.cert])
    chain_b = issuers(bob.cert, [ca.cert])
    assert chain_a == [alice.cert, ca.cert]
    assert map_to_name(by_ca, chain_a) == "alice@example.net"
    # bob has no rfc822Name: the entry gives no name, the next one is tried
    assert map_to_name(by_ca, chain_b) == "bob-cn"
    specified = Entry(5, Fingerprint.parse(bob.fingerprint(6)), "specified", "robert")
    assert map_to_name([*by_ca, specified], chain_b) == "robert"
    assert map_to_name([*by_ca, specified], chain_a) == "alice@example.net"
    # without the CA in the chain nothing of the CA's entries matches
    assert map_to_name(by_ca, [bob.cert]) is None
    stranger = issue(tmp_path, "stranger")
    assert issuers(stranger.cert, [ca.cert]) == [stranger.cert]
    assert map_to_name([*by_ca, specified], [stranger.cert]) is None


def test_an_entry_must_name_exactly_when_specified() -> None:
    fp = Fingerprint(4, bytes(32))
    with pytest.raises(ValueError, match="specified needs a name"):
        Entry(1, fp, "specified")
    with pytest.raises(ValueError, match="takes its name from the certificate"):
        Entry(1, fp, "common-name", "x")


# -- the transport file ------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_transport_file_is_read(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    alice = pki.client("alice")
    text = pki.tls_table(entry(1, alice.fingerprint(), "specified", "alice")) + (
        '\n[[call-home]]\nname = "nms"\ntransport = "tls"\nhost = "127.0.0.1"\n'
        '\n[[call-home]]\nname = "nms2"\ntransport = "ssh"\nhost = "::1"\n'
        'connection = "periodic"\nperiod = 60\n'
    )
    loaded = transports.load(write(tmp_path / "t.toml", text))
    assert loaded.tls is not None
    assert loaded.tls.cert_to_name[0].name == "alice"
    assert [(c.name, c.port, c.connection) for c in loaded.call_home] == [
        ("nms", 4335, "persistent"),
        ("nms2", 4334, "periodic"),
    ]
    assert str(loaded.call_home[1]) == "call home 'nms2' (ssh to [::1]:4334)"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_private_key_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    pki = Pki.make(tmp_path)
    pki.server.key_path.chmod(mode)
    path = write(tmp_path / "t.toml", pki.tls_table(entry(1, pki.ca.fingerprint(), "common-name")))
    with pytest.raises(ValueError) as refused:
        transports.load(path)
    message = str(refused.value)
    assert (
        f"private key {pki.server.key_path} is readable or writable by group or others" in message
    )
    assert f"(mode {mode:04o})" in message and "chmod 600" in message
    assert pki.server.key_pem.decode().splitlines()[1] not in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tls]\ncertificate = 1\n", "certificate must be a non-empty string"),
        ("[tls2]\n", "unknown key 'tls2'"),
        ('[[call-home]]\nname = "a"\ntransport = "tls"\nhost = "h"\n', "needs the [tls] table"),
        ('[[call-home]]\nname = "a"\ntransport = "quic"\nhost = "h"\n', "ssh or tls"),
        ('[[call-home]]\nname = "a"\ntransport = "ssh"\nhost = "h"\nport = 0\n', "1..65535"),
        (
            '[[call-home]]\nname = "a"\ntransport = "ssh"\nhost = "h"\nconnection = "x"\n',
            "persistent or periodic",
        ),
        ("[tls\n", "not TOML"),
    ],
)
def test_bad_transport_files_are_refused_precisely(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "t.toml", text)
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        transports.load(path)
    assert str(refused.value).startswith(f"{path}: ")


def test_bad_cert_to_name_entries_are_refused(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    fp = pki.ca.fingerprint()
    cases = {
        entry(1, fp, "specified"): "specified needs a name",
        entry(1, fp, "san-dns-name"): "map-type 'san-dns-name' is not one of",
        entry(1, "04:00", "common-name"): "a sha256 hash has 32 octets",
        entry(1, fp, "common-name") + entry(1, fp, "common-name"): "id 1 is used twice",
    }
    for body, message in cases.items():
        path = write(tmp_path / "t.toml", pki.tls_table(body))
        with pytest.raises(ValueError, match=message):
            transports.load(path)
    with pytest.raises(ValueError, match="at least one"):
        transports.load(write(tmp_path / "t.toml", pki.tls_table()))


# -- the daemon ------------------------------------------------------------------------
def tls_daemon(make_daemon: DaemonFactory, pki: Pki, *entries: str) -> Running:
    path = write(pki.directory / "transport.toml", pki.tls_table(*entries))
    return make_daemon(transports=transports.load(path), tls=True)


def connect_tls(running: Running, pki: Pki, client: Issued, timeout: float = 10):  # type: ignore[no-untyped-def]
    assert running.tls_port is not None
    return manager.connect_tls(
        host="127.0.0.1",
        port=running.tls_port,
        certfile=str(client.cert_path),
        keyfile=str(client.key_path),
        ca_certs=str(pki.server_ca.cert_path),
        protocol=ssl.PROTOCOL_TLS_CLIENT,
        timeout=timeout,
    )


def sessions(running: Running) -> list[tuple[str, str]]:
    """(transport, username) of every session, as <get> reports them (over SSH)."""
    with running.connect() as m:
        reply = m.get(
            filter=("subtree", f'<netconf-state xmlns="{MON}"><sessions/></netconf-state>')
        )
    root = reply.data_ele
    ns = f"{{{MON}}}"
    return sorted(
        (s.findtext(f"{ns}transport") or "", s.findtext(f"{ns}username") or "")
        for s in root.iter(f"{ns}session")
    )


def refused(running: Running, pki: Pki, client: Issued) -> None:
    """The client gets no NETCONF session (whenever in the handshake it learns it)."""
    with pytest.raises(Exception) as failed, connect_tls(running, pki, client, timeout=5) as m:
        m.get_config("running")
    # ncclient's TLSError, or the session closing before or at the hello
    assert type(failed.value).__module__.startswith(("ncclient", "ssl")), repr(failed.value)
    server = running.daemon.server
    assert server is not None
    deadline = time.monotonic() + 5
    while server.session_ids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.session_ids() == []


def test_a_mapped_client_is_served_as_its_user(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    operator = pki.client("operator")
    running = tls_daemon(make_daemon, pki, entry(1, operator.fingerprint(), "specified", "admin"))
    with connect_tls(running, pki, operator) as m:
        config = m.get_config("running").data_xml
        assert "serial-over-ip" in config
        # writes too: admin, through the same rpc code as over SSH
        m.edit_config(
            target="running",
            config=f'<config><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
            "<description>over TLS</description></channel></serial-over-ip></config>",
        )
        assert "over TLS" in m.get_config("running").data_xml
        assert ("netconf-tls", "admin") in sessions(running)
    # the same configuration seen over SSH
    with running.connect() as ssh:
        assert "over TLS" in ssh.get_config("running").data_xml


def test_unknown_expired_and_unmapped_certificates_are_refused(
    make_daemon: DaemonFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TLS_LOG)
    pki = Pki.make(tmp_path)
    good = pki.client("good")
    running = tls_daemon(make_daemon, pki, entry(1, good.fingerprint(), "specified", "admin"))
    # unknown: self-signed, not issued by the client CA (even if mapped by name)
    stranger = issue(tmp_path, "stranger")
    refused(running, pki, stranger)
    # expired, issued by the trusted CA
    expired = pki.client("expired", not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    refused(running, pki, expired)
    # trusted, valid, but no cert-to-name entry matches it
    unmapped = pki.client("unmapped")
    refused(running, pki, unmapped)
    log = caplog.text
    assert "certificate has expired" in log
    assert "CN=unmapped" in log and "matches no cert-to-name entry" in log
    assert log.count("TLS connection from 127.0.0.1") >= 3
    # and the good one still gets in
    with connect_tls(running, pki, good) as m:
        m.get_config("running")


def test_nacm_applies_to_the_mapped_user(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    """A certificate issued by the CA maps (by the CA's fingerprint,
    san-rfc822-name) to alice, who may read but not write by default."""
    pki = Pki.make(tmp_path)
    alice = pki.client("alice-laptop", email="alice")
    running = tls_daemon(make_daemon, pki, entry(7, pki.ca.fingerprint(), "san-rfc822-name"))
    with connect_tls(running, pki, alice) as m:
        assert "serial-over-ip" in m.get_config("running").data_xml
        with pytest.raises(RPCError) as denied:
            m.edit_config(
                target="running",
                config=f'<config><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
                "<description>x</description></channel></serial-over-ip></config>",
            )
        assert denied.value.tag == "access-denied"
        # nacm is not readable by alice (default-deny-all), over TLS as over SSH
        nacm = m.get_config(
            "running",
            filter=("subtree", '<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"/>'),
        )
        assert "rule-list" not in nacm.data_xml and "enable-nacm" not in nacm.data_xml
        assert ("netconf-tls", "alice") in sessions(running)
        # a rule for alice's group lets her write: the NACM of SSH users
        with running.connect() as admin:
            admin.edit_config(
                target="running",
                config="""<config><nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm">
                  <groups><group><name>ops</name><user-name>alice</user-name></group></groups>
                  <rule-list><name>ops</name><group>ops</group><rule><name>w</name>
                  <module-name>nf-serial-over-ip</module-name>
                  <access-operations>create update delete</access-operations>
                  <action>permit</action></rule></rule-list></nacm></config>""",
            )
        m.edit_config(
            target="running",
            config=f'<config><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
            "<description>by alice</description></channel></serial-over-ip></config>",
        )
        assert "by alice" in m.get_config("running").data_xml


def test_a_stalled_handshake_holds_nobody_up(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    """As tests/test_netconf_transport.py's misbehaving SSH clients: a TCP
    connection that says nothing, one that sends half a ClientHello and one
    whose handshake is done but never sends a hello; a third client is
    served within 2 s."""
    pki = Pki.make(tmp_path)
    good = pki.client("good")
    running = tls_daemon(make_daemon, pki, entry(1, good.fingerprint(), "specified", "admin"))
    assert running.tls_port is not None
    address = ("127.0.0.1", running.tls_port)
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(socket.create_connection(address, timeout=5))
        half = stack.enter_context(socket.create_connection(address, timeout=5))
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        no_hello = stack.enter_context(
            client_context(pki, good).wrap_socket(socket.create_connection(address, timeout=5))
        )
        started = time.monotonic()
        with connect_tls(running, pki, good) as m:
            assert "serial-over-ip" in m.get_config("running").data_xml
        took = time.monotonic() - started
        print(f"third TLS client served in {took * 1000:.0f} ms")
        assert took < 2.0, took
        assert silent.fileno() >= 0 and half.fileno() >= 0 and no_hello.fileno() >= 0


def test_no_key_material_in_the_log_or_get(
    make_daemon: DaemonFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pki = Pki.make(tmp_path)
    good = pki.client("good")
    running = tls_daemon(make_daemon, pki, entry(1, good.fingerprint(), "specified", "admin"))
    add_user(running.daemon.users, "admin", running.password)
    with connect_tls(running, pki, good) as m:
        everything = m.get().data_xml + m.get_config("running").data_xml
    refused(running, pki, issue(tmp_path, "stranger"))
    secrets = [
        pki.server.key_pem,
        good.key_pem,
        base64.b64encode(pki.server.der),
        base64.b64encode(good.der),
    ]
    for secret in secrets:
        for line in secret.decode().splitlines()[1:-1] or [secret.decode()[:40]]:
            assert line[:40] not in caplog.text
            assert line[:40] not in everything
    assert "BEGIN" not in caplog.text and "BEGIN" not in everything
    assert str(pki.server.key_path) not in everything


def test_the_mapping_follows_the_chain_to_the_ca(tmp_path: Path) -> None:
    """issuers() verifies signatures, not only names: a CA of the same name
    but another key is not the issuer."""
    ca = issue(tmp_path, "ca", ca=True)
    other = tmp_path / "other"
    other.mkdir()
    impostor = issue(other, "ca", ca=True)
    client = issue(tmp_path, "client", ca)
    assert issuers(client.cert, [impostor.cert]) == [client.cert]
    assert issuers(client.cert, [impostor.cert, ca.cert]) == [client.cert, ca.cert]
    assert isinstance(client.cert, x509.Certificate)


def test_tls_sessions_appear_in_monitoring_with_their_transport(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    pki = Pki.make(tmp_path)
    bob = pki.client("bob")
    running = tls_daemon(make_daemon, pki, entry(1, bob.fingerprint(), "common-name"))
    with connect_tls(running, pki, bob) as m:
        reply = m.get(
            filter=("subtree", f'<netconf-state xmlns="{MON}"><sessions/></netconf-state>')
        )
        own = [
            s
            for s in reply.data_ele.iter(f"{{{MON}}}session")
            if s.findtext(f"{{{MON}}}session-id") == m.session_id
        ]
        assert len(own) == 1, etree.tostring(reply.data_ele)
        assert own[0].findtext(f"{{{MON}}}transport") == "netconf-tls"
        assert own[0].findtext(f"{{{MON}}}username") == "bob"
        assert own[0].findtext(f"{{{MON}}}source-host") == "127.0.0.1"


def test_the_readme_transport_file_is_read_as_documented(tmp_path: Path) -> None:
    """The README's example file, with its three files made here."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## NETCONF over TLS and call home", 1)[1]
    block = section.split("    [tls]", 1)[1].split("\nRelative paths", 1)[0]
    text = "[tls]" + "\n".join(line[4:] for line in block.splitlines())
    pki = Pki.make(tmp_path)
    for made, name in (
        (pki.server.cert_path, "server.crt"),
        (pki.server.key_path, "server.key"),
        (pki.ca.cert_path, "clients-ca.pem"),
    ):
        made.rename(tmp_path / name)
    loaded = transports.load(write(tmp_path / "transport.toml", text))
    assert loaded.tls is not None
    assert [(e.id, e.map_type, e.name) for e in loaded.tls.cert_to_name] == [
        (1, "specified", "alice"),
        (2, "san-rfc822-name", None),
    ]
    assert loaded.call_home == (
        transports.CallHome("nms", "ssh", "192.0.2.10", 4334, "persistent", 3600.0, 30.0),
    )


def test_notifications_and_kill_session_over_tls(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """A subscribed TLS session reads rpcs in its thread while its notifier
    writes in another (TlsStream's lock); kill-session from an SSH session
    ends it (its blocked read is woken)."""
    pki = Pki.make(tmp_path)
    nms = pki.client("nms")
    running = tls_daemon(make_daemon, pki, entry(1, nms.fingerprint(), "specified", "admin"))
    m = connect_tls(running, pki, nms)
    with running.connect() as ssh:
        m.create_subscription()
        for i in range(5):
            ssh.edit_config(
                target="running",
                config=f'<config><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
                f"<description>n{i}</description></channel></serial-over-ip></config>",
            )
            assert "serial-over-ip" in m.get_config("running").data_xml  # interleaved
        received: list[str] = []
        changes = 0
        while changes < 5:  # the SSH session's netconf-session-start may come first
            note = m.take_notification(block=True, timeout=10)
            assert note is not None, received
            received.append(note.notification_xml)
            changes += "netconf-config-change" in note.notification_xml
            assert len(received) <= 6, received
        others = [n for n in received if "netconf-config-change" not in n]
        assert all("netconf-session-start" in n for n in others), others
        server = running.daemon.server
        assert server is not None
        tls_id = int(m.session_id)
        assert tls_id in server.session_ids()
        ssh.kill_session(str(tls_id))
        deadline = time.monotonic() + 5
        while tls_id in server.session_ids() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tls_id not in server.session_ids()
    deadline = time.monotonic() + 5
    while m.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not m.connected  # the client saw its connection closed


@pytest.mark.parametrize(
    ("version", "served"),
    [
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ],
)
def test_tls_1_2_or_later_only(
    make_daemon: DaemonFactory, tmp_path: Path, version: ssl.TLSVersion, served: bool
) -> None:
    pki = Pki.make(tmp_path)
    nms = pki.client("nms")
    running = tls_daemon(make_daemon, pki, entry(1, nms.fingerprint(), "specified", "admin"))
    assert running.tls_port is not None
    ctx = client_context(pki, nms)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets this client offer TLS 1.1 at all
    with warnings.catch_warnings():  # TLSv1_1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", running.tls_port), timeout=5) as raw:
        if not served:
            # the server's alert: it refused the version
            with pytest.raises(ssl.SSLError, match=r"ALERT_PROTOCOL_VERSION"):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            return
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
            tls.settimeout(5)
            assert b"<hello" in tls.recv(4096)  # the server's hello, unprompted


@given(st.permutations(range(4)))
def test_the_map_does_not_depend_on_the_order_entries_are_given(order: list[int]) -> None:
    certs = PERMUTATION_CERTS
    entries = [
        Entry(30, Fingerprint.of(certs["ca"].der), "common-name"),
        Entry(10, Fingerprint.of(certs["ca"].der), "san-rfc822-name"),
        Entry(20, Fingerprint.of(certs["bob"].der), "specified", "robert"),
        Entry(5, Fingerprint.of(certs["other"].der), "specified", "nobody"),
    ]
    shuffled = [entries[i] for i in order]
    ca = certs["ca"].cert
    assert map_to_name(shuffled, [certs["alice"].cert, ca]) == "alice@example.net"
    assert map_to_name(shuffled, [certs["bob"].cert, ca]) == "robert"
    assert map_to_name(shuffled, [certs["carol"].cert, ca]) == "carol"
    assert map_to_name(shuffled, [certs["other"].cert]) == "nobody"


def _permutation_certs() -> dict[str, Issued]:
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="nf-pki-"))
    ca = issue(directory, "ca", ca=True)
    made = {
        "ca": ca,
        "alice": issue(directory, "alice", ca, email="alice@example.net"),
        "bob": issue(directory, "bob", ca),
        "carol": issue(directory, "carol", ca),
        "other": issue(directory, "other"),
    }
    for issued in made.values():
        issued.key_path.unlink()
        issued.cert_path.unlink()
    directory.rmdir()
    return made


PERMUTATION_CERTS = _permutation_certs()


def test_a_source_negotiating_too_many_tls_connections_gets_no_more(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """The cap on connections of one address negotiating at once (shared
    with SSH, ``Policy.max_unauthenticated``) holds for TLS: the excess is
    closed before any TLS work, and a place that frees serves again."""
    pki = Pki.make(tmp_path)
    nms = pki.client("nms")
    path = write(
        pki.directory / "transport.toml",
        pki.tls_table(entry(1, nms.fingerprint(), "specified", "admin")),
    )
    running = make_daemon(
        transports=transports.load(path), tls=True, login_policy=Policy(max_unauthenticated=2)
    )
    assert running.tls_port is not None
    address = ("127.0.0.1", running.tls_port)
    silent = [socket.create_connection(address, timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # both are negotiating
        with socket.create_connection(address, timeout=5) as excess:
            assert excess.recv(10) == b""  # closed at once, no ServerHello
        silent.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the place frees once the server sees the close
            try:
                with connect_tls(running, pki, nms, timeout=5) as m:
                    m.get_config("running")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        server = running.daemon.server
        assert server is not None
        assert server.throttle.counters.refused_connections >= 1
    finally:
        for sock in silent:
            sock.close()
