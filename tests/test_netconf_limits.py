"""Resource limits that keep one client from hurting the daemon or other clients."""

from __future__ import annotations

import socket
import threading
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
        ds = Datastores(default_schema(), NullRuntime(), Node())
        ds.is_live = lambda sid: sid != 7
        assert [e.tag for e in await ds.lock(7, "running")] == ["operation-failed"]
        assert ds.locks == {}
        assert await ds.lock(8, "running") == []

    anyio.run(scenario)


def test_connections_in_handshake_are_capped(daemon: Running) -> None:
    server = daemon.daemon.server
    assert server is not None
    server._handshakes = threading.BoundedSemaphore(2)
    idle = [socket.create_connection((daemon.host, daemon.port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # both are now in the handshake, holding the two places
        extra = socket.create_connection((daemon.host, daemon.port), timeout=5)
        extra.settimeout(5)
        assert extra.recv(100) == b""  # closed at once, no SSH banner
        extra.close()
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # places come back when the idle ones go
        try:
            with _client(daemon) as client:
                client.hello()
                assert is_ok(client.rpc("<lock><target><running/></target></lock>"))
            break
        except Exception:
            time.sleep(0.1)
    else:
        pytest.fail("no place freed after the idle connections closed")


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
