"""Resource limits that keep one client from hurting the daemon or other clients."""

from __future__ import annotations

import socket
import time

import anyio
import pytest
from conftest import DaemonFactory, Running
from lxml import etree
from rawclient import GET_CONFIG, RawClient, error_tags, is_ok, rpc_xml

from nf.config.tree import Node
from nf.northbound import server as server_module
from nf.northbound.datastores import Datastores
from nf.runtime.transaction import NullRuntime
from nf.schema import default_schema


def _client(d: Running) -> RawClient:
    return RawClient(d.host, d.port, d.username, d.password).connect()


def test_closed_session_cannot_take_a_lock() -> None:
    """A killed session's rpc still in flight must not re-take a lock."""

    async def scenario() -> None:
        ds = Datastores(default_schema(), NullRuntime(), Node(), is_live=lambda sid: sid != 7)
        assert [e.tag for e in await ds.locks.lock(7, "running")] == ["operation-failed"]
        assert ds.locks.holders == {}
        assert await ds.locks.lock(8, "running") == []

    anyio.run(scenario)


def test_connections_in_handshake_are_capped(
    make_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the cap, new connections wait in the backlog (no SSH banner)
    until a negotiating connection finishes; they are not refused."""
    monkeypatch.setattr(server_module, "MAX_HANDSHAKES", 2)
    daemon = make_daemon()
    idle = [socket.create_connection((daemon.host, daemon.port), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.3)  # two of them now hold the two places
        waiting = idle[2]
        waiting.settimeout(0.7)
        with pytest.raises(TimeoutError):
            waiting.recv(100)  # no banner: not accepted yet
        idle[0].close()  # its handshake ends (EOF), a place frees
        waiting.settimeout(5)
        assert waiting.recv(100).startswith(b"SSH-2.0-")
    finally:
        for sock in idle:
            sock.close()
    with _client(daemon) as client:
        client.hello()
        assert is_ok(client.rpc("<lock><target><running/></target></lock>"))


def test_second_channel_on_one_connection_is_refused(daemon: Running) -> None:
    with _client(daemon) as client:
        client.hello()
        assert client.transport is not None
        import paramiko

        with pytest.raises(paramiko.ChannelException):
            client.transport.open_session(timeout=5)
        reply = client.rpc(GET_CONFIG)  # the first channel is still served
        assert not error_tags(reply) and "demo" in etree.tostring(reply).decode()


def test_client_that_never_reads_loses_session_and_locks(
    make_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "SEND_TIMEOUT", 1.0)
    d = make_daemon()
    greedy = _client(d)
    greedy.hello()
    assert is_ok(greedy.rpc("<lock><target><running/></target></lock>"))
    # ask for replies without ever reading them until the SSH window is full
    request = rpc_xml(GET_CONFIG, "x")
    assert greedy.channel is not None
    greedy.channel.settimeout(0.5)
    try:
        for _ in range(20000):
            greedy.send_message(request)
    except (TimeoutError, OSError, EOFError):
        pass  # the server stopped reading from us: it is blocked or gone
    deadline = time.monotonic() + 15
    with _client(d) as other:
        other.hello()
        while time.monotonic() < deadline:
            reply = other.rpc("<lock><target><running/></target></lock>")
            if is_ok(reply):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the lock of a client that reads nothing was never released")
    greedy.close()
