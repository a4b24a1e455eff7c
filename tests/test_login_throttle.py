"""Failed logins are throttled per source address, end to end: a real daemon,
real SSH connections from several loopback addresses (127.0.0.0/8 is all
loopback on Linux), the counters read back with <get>.

The storm test runs a faster policy than the daemon's (a refused attempt
every 0.25 s instead of every second) so that its STORM attempts take seconds,
not a minute; tests/test_throttle.py checks the default policy itself on a fake
clock."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable

import paramiko
import pytest
from conftest import DaemonFactory, Running
from lxml import etree

from nf.northbound.throttle import Policy

BRUTE = "127.0.0.1"
OTHER = "127.0.0.2"
SERVER_LOG = "nf.northbound.server"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
FAST = Policy(first_delay=0.2, max_delay=0.8, refused_pace=0.25)
"""The default policy's shape (3 free failures, refusal after 6 for 60 s),
with shorter delays."""
STORM = 20
"""Attempts of the storm: its delayed ones, then 14 refused at the policy's pace."""


def login(daemon: Running, source: str, password: str) -> bool:
    """One password attempt on a fresh SSH connection from ``source``, as a
    brute-forcer would make it; True if it was accepted."""
    sock = socket.create_connection((daemon.host, daemon.port), 10, source_address=(source, 0))
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        transport.auth_timeout = 10
        transport.auth_password(daemon.username, password, fallback=False)
        return transport.is_authenticated()
    except paramiko.AuthenticationException:
        return False
    finally:
        transport.close()


def counters(daemon: Running, source: str) -> dict[str, int]:
    """/netconf-server through <get>, by a client from ``source``."""
    with daemon.connect(bind_addr=source) as m:
        reply = m.get(("subtree", f'<netconf-server xmlns="{SOIP}"/>'))
    node = reply.data_ele.find(f"{{{SOIP}}}netconf-server")
    assert node is not None, etree.tostring(reply.data_ele)
    return {etree.QName(leaf).localname: int(leaf.text or "") for leaf in node}


def count_hashes(daemon: Running, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the password checks (an scrypt each) the daemon makes."""
    users = daemon.daemon.users
    check: Callable[[str, str], bool] = users.check_password
    calls = [0]

    def counting(name: str, password: str) -> bool:
        calls[0] += 1
        return check(name, password)

    monkeypatch.setattr(users, "check_password", counting)
    return calls


@pytest.mark.timing  # the pace of the refusals, measured from the client
def test_password_storm_is_slowed_then_refused_unhashed_while_others_log_in(
    make_daemon: DaemonFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOG)
    daemon = make_daemon(login_policy=FAST)
    hashes = count_hashes(daemon, monkeypatch)
    throttle = daemon.daemon.server.throttle  # type: ignore[union-attr]
    answered: list[float] = []
    accepted: list[bool] = []

    def storm() -> None:
        for i in range(STORM):
            accepted.append(login(daemon, BRUTE, f"guess-{i}"))
            answered.append(time.monotonic())

    brute = threading.Thread(target=storm, daemon=True)
    started = time.monotonic()
    brute.start()
    deadline = time.monotonic() + 20
    while not throttle.refusing(BRUTE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert throttle.refusing(BRUTE)
    # meanwhile a correct login from another address is not slowed
    t0 = time.monotonic()
    assert login(daemon, OTHER, daemon.password)
    other_login = time.monotonic() - t0
    assert other_login < 1.0
    brute.join(timeout=60)
    assert not brute.is_alive()
    elapsed = time.monotonic() - started

    assert accepted == [False] * STORM
    gaps = [b - a for a, b in itertools.pairwise(answered[3:])]
    # after the three free failures, no faster than the policy's pace
    # (client-side times: a little jitter either way)
    assert min(gaps) > 0.8 * FAST.refused_pace, gaps
    assert hashes[0] == FAST.refuse_after + 1  # the storm's six, and OTHER's login
    # refused: even the right password is not checked
    assert not login(daemon, BRUTE, daemon.password)
    assert hashes[0] == FAST.refuse_after + 1
    print(
        f"{STORM} attempts in {elapsed:.1f} s; gaps {min(gaps):.2f}..{max(gaps):.2f} s; "
        f"login from {OTHER} in {other_login * 1000:.0f} ms"
    )

    assert counters(daemon, OTHER) == {
        "failed-password-logins": FAST.refuse_after,
        "failed-public-key-logins": 0,
        "refused-logins": STORM - FAST.refuse_after + 1,
        "refused-connections": 0,
        "throttled-sources": 1,
    }
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == SERVER_LOG and r.levelno == logging.WARNING
    ]
    assert any(w.startswith(f"delaying logins from {BRUTE}") for w in warnings), warnings
    assert any(w.startswith(f"refusing logins from {BRUTE} for 60 s") for w in warnings), warnings


def test_successful_login_forgives_earlier_failures(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(login_policy=FAST)
    throttle = daemon.daemon.server.throttle  # type: ignore[union-attr]
    for i in range(FAST.free_failures + 1):
        assert not login(daemon, BRUTE, f"typo-{i}")
    assert throttle.sources() == 1
    assert login(daemon, BRUTE, daemon.password)
    assert throttle.sources() == 0


def test_connections_negotiating_at_once_are_capped_per_source(
    make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Three may negotiate; a fourth waits, without a banner, and gets its
    turn when one of the three is done; a fifth is over the waiting bound
    too and is closed at once."""
    caplog.set_level(logging.INFO, logger=SERVER_LOG)
    daemon = make_daemon(login_policy=Policy(max_unauthenticated=3, max_waiting=1))
    throttle = daemon.daemon.server.throttle  # type: ignore[union-attr]
    idle = []
    try:
        for _ in range(4):
            idle.append(
                socket.create_connection((daemon.host, daemon.port), 5, source_address=(BRUTE, 0))
            )
        for sock in idle[:3]:  # within the cap: the server speaks SSH
            assert sock.recv(100).startswith(b"SSH-2.0-")
        deadline = time.monotonic() + 5
        while throttle.waiting(BRUTE) != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert throttle.waiting(BRUTE) == 1  # the fourth waits, no SSH work for it
        idle[3].settimeout(0.3)
        with pytest.raises(TimeoutError):
            idle[3].recv(100)
        fifth = socket.create_connection((daemon.host, daemon.port), 5, source_address=(BRUTE, 0))
        idle.append(fifth)
        with contextlib.suppress(ConnectionResetError):
            assert fifth.recv(100) == b""  # over both bounds: closed at once, no banner
        # another address is not affected
        assert login(daemon, OTHER, daemon.password)
        idle[0].close()  # one of the three is done: the fourth's turn
        idle[3].settimeout(5)
        assert idle[3].recv(100).startswith(b"SSH-2.0-")
    finally:
        for sock in idle:
            sock.close()
    assert counters(daemon, OTHER)["refused-connections"] == 1
    assert any(
        r.getMessage().startswith("connection from 127.0.0.1:")
        and "3 connections of 127.0.0.1 negotiating and 1 waiting already" in r.getMessage()
        for r in caplog.records
    )
    # the closed idle connections free their places: the source may log in again
    deadline = time.monotonic() + 10
    while throttle.negotiating(BRUTE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert login(daemon, BRUTE, daemon.password)


def test_rejected_public_keys_are_counted_and_weigh_less(make_daemon: DaemonFactory) -> None:
    """Four keys offered and rejected: counted, but not yet a delay (a
    client legitimately tries its keys before its password)."""
    daemon = make_daemon()
    for _ in range(4):
        sock = socket.create_connection((daemon.host, daemon.port), 10, source_address=(BRUTE, 0))
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=10)
            with pytest.raises(paramiko.AuthenticationException):
                transport.auth_publickey(daemon.username, paramiko.ECDSAKey.generate(bits=256))
        finally:
            transport.close()
    assert daemon.daemon.server.throttle.attempt(BRUTE).wait == 0  # type: ignore[union-attr]
    got = counters(daemon, OTHER)
    assert (got["failed-public-key-logins"], got["failed-password-logins"]) == (4, 0)
