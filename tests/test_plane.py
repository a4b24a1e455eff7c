"""The data plane as a process of its own, driven through RemoteRuntime over
its Unix socket: real child processes, pseudo-terminals as serial devices,
TCP channels on loopback.  The tests play the supervisor where one is
needed (kill -9, start a new data plane on the same socket)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from planehelpers import (
    Planes,
    blocking,
    forbidden,
    one_channel,
    open_planes,
    serial_port,
    server_channel,
    with_remote,
)
from relayhelpers import (
    connect,
    exchange,
    free_port,
    is_closed,
    port_is_free,
    pty_device,
    read_sock,
)

from nf.model import RelayConfig
from nf.plane.messages import (
    REPLIES,
    VERSION,
    Apply,
    Event,
    Failed,
    Hello,
    HelloReply,
    Inspect,
    InspectReply,
    Prepare,
    Prepared,
    Reply,
    SnapshotReply,
    SnapshotRequest,
    encode,
)
from nf.plane.remote import DataPlaneError, DataPlaneUnavailable, RemoteRuntime, SharedReads
from nf.runtime.document import DocumentPatch
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import Delta, Fault, PortState, PrepareError, Snapshot

Events = list[tuple[str, dict[str, str]]]


@pytest.fixture
def planes() -> Iterator[Planes]:
    with open_planes() as planes:
        yield planes


async def eventually(probe: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = anyio.current_time() + timeout
    while not probe():
        assert anyio.current_time() < deadline, f"not within {timeout} s"
        await anyio.sleep(0.01)


def kinds(events: Events, kind: str, **match: str) -> list[dict[str, str]]:
    """The payloads of the events of ``kind`` whose leaves include ``match``."""
    return [
        payload
        for k, payload in events
        if k == kind and all(payload.get(key.replace("_", "-")) == v for key, v in match.items())
    ]


def record(events: Events) -> Callable[[str, dict[str, str]], None]:
    return lambda kind, payload: events.append((kind, payload))


class RawPlane:
    """A control plane speaking frames by hand, with blocking sockets."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.events: Events = []

    def send(self, message: object) -> None:
        self.sock.sendall(encode(message))  # type: ignore[arg-type]

    def receive(self) -> Reply:
        """The next reply; events on the way are kept in ``events``."""
        while True:
            (size,) = struct.unpack(">I", read_sock(self.sock, 4))  # type: ignore[arg-type]
            reply = REPLIES.decode(read_sock(self.sock, size))  # type: ignore[arg-type]
            if not isinstance(reply, Event):
                return reply
            self.events.append((reply.kind, reply.payload))

    def hello(self) -> HelloReply:
        self.send(Hello(VERSION))
        reply = self.receive()
        assert isinstance(reply, HelloReply)
        return reply

    def closed_by_peer(self) -> bool:
        return is_closed(self.sock)  # type: ignore[arg-type]

    def close(self) -> None:
        self.sock.close()


def test_a_channel_runs_in_the_data_plane_process(planes: Planes) -> None:
    dp = planes.start()
    tcp = free_port()
    events: Events = []

    async def scenario(remote: RemoteRuntime) -> None:
        assert await remote.running() is None
        transaction = await remote.prepare(
            one_channel(device, tcp), DocumentPatch.of_bytes(b"<config/>")
        )
        await transaction.apply()
        client = await blocking(connect, tcp)
        await blocking(exchange, client, master, b"to serial", b"to net!")
        snapshot = await remote.snapshot()
        (channel,) = snapshot.channels
        counters = dict(channel.counters)
        assert (channel.name, channel.oper_status) == ("c", "up")
        assert counters["net-to-serial-bytes"] == 9 and counters["serial-to-net-bytes"] == 7
        assert [s.remote_port for s in channel.sessions] == [client.getsockname()[1]]
        (port,) = snapshot.ports
        assert port == PortState(
            "p",
            "up",
            None,
            7,
            9,
            port.effective,
            tuple((line, "unknown") for line in ("dtr", "rts", "cts", "dsr", "dcd", "ri")),
        )
        assert dict(port.effective)["baud-rate"] == 115200
        assert "set-by-session" not in dict(port.effective)
        # a filtered <get>: the state of the channels named, read afresh
        assert await remote.snapshot(frozenset({"c"})) == snapshot
        assert await remote.snapshot(frozenset({"other"})) == Snapshot()
        await remote.clear_counters("c")
        counters = dict((await remote.snapshot()).channels[0].counters)
        assert counters["net-to-serial-bytes"] == 0 and "last-cleared" in counters
        running = await remote.running()
        assert running is not None
        assert running == (one_channel(device, tcp).applied_to(RelayConfig({}, {})), b"<config/>")
        await eventually(lambda: kinds(events, "session-event", event="connected"))
        client.close()
        await eventually(lambda: kinds(events, "session-event", event="disconnected"))
        # a deletion stops the channel: its port closes, its listener goes
        await (
            await remote.prepare(
                Delta({"p": None}, {"c": None}), DocumentPatch.of_bytes(b"<config/>")
            )
        ).apply()
        await eventually(lambda: kinds(events, "port-event", event="closed"))
        assert port_is_free(tcp)
        assert await remote.snapshot() == Snapshot()

    with pty_device() as (master, device):
        with_remote(dp.socket, scenario, record(events))
    (connected,) = kinds(events, "session-event", event="connected")
    assert connected["channel"] == "c" and connected["role"] == "primary"
    assert kinds(events, "port-event", serial_port="p", event="opened")


def test_a_refused_or_aborted_prepare_holds_nothing(planes: Planes) -> None:
    dp = planes.start()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    tcp = free_port()

    async def scenario(remote: RemoteRuntime) -> None:
        with pytest.raises(PrepareError) as refused:
            await remote.prepare(one_channel(device, busy), DocumentPatch.of_bytes(b""))
        (fault,) = refused.value.faults
        assert (fault.tag, fault.channel, fault.leaf) == ("in-use", "c", "listen/port")
        assert f"cannot bind TCP 127.0.0.1:{busy}" in fault.message
        transaction = await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))
        assert not port_is_free(tcp)  # prepare bound it...
        await transaction.abort()
        assert port_is_free(tcp)  # ...and abort released it
        assert await remote.running() is None

    with pty_device() as (_, device), taken:
        with_remote(dp.socket, scenario)


def test_the_data_plane_imports_nothing_of_the_control_plane(planes: Planes) -> None:
    dp = planes.start()
    tcp = free_port()

    async def scenario(remote: RemoteRuntime) -> tuple[str, ...]:
        await (await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))).apply()
        client = await blocking(connect, tcp)
        await blocking(exchange, client, master, b"x", b"y")
        await remote.snapshot()
        await remote.clear_counters(None)
        client.close()
        return (await remote.inspect()).modules

    with pty_device() as (master, device):
        modules = with_remote(dp.socket, scenario)
    assert "nf.runtime.relay" in modules and "serial" in modules  # it did the work
    assert forbidden(modules) == []
    # nor does any module of the runtime or the plane, imported alone
    code = (
        "import sys, pkgutil, importlib, nf.runtime, nf.plane\n"
        "for package in (nf.runtime, nf.plane):\n"
        "    for info in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "nf.plane.remote" in out and "nf.runtime.udp" in out
    assert forbidden(out) == []


def test_a_newer_connection_replaces_the_older_and_its_transaction_is_aborted(
    planes: Planes,
) -> None:
    dp = planes.start()
    tcp = free_port()
    with pty_device() as (_, device):
        old = RawPlane(dp.socket)
        first = old.hello()
        assert first.version == VERSION and first.pid == dp.pid and not first.has_config
        old.send(Prepare(1, one_channel(device, tcp), DocumentPatch.of_bytes(b"")))
        assert old.receive() == Prepared(1)
        assert not port_is_free(tcp)
        new = RawPlane(dp.socket)  # a restarted control plane
        assert new.hello().started_at == first.started_at
        # by the time the new one is answered, the old one is closed and what
        # it prepared released
        assert old.closed_by_peer()
        assert port_is_free(tcp)
        new.send(Apply(1))
        assert new.receive() == Failed("no transaction 1 is prepared")
        old.close()
        new.close()
    assert dp.alive()


def test_an_unknown_protocol_version_is_refused_clearly(planes: Planes) -> None:
    dp = planes.start()
    raw = RawPlane(dp.socket)
    raw.send(Hello(99))
    assert raw.receive() == Failed(
        f"protocol version 99 is not supported: this data plane speaks version {VERSION}"
    )
    assert raw.closed_by_peer()
    raw.close()
    assert f"protocol version 99, this data plane {VERSION}: refused" in dp.log()


def test_a_data_plane_of_another_version_is_not_used(planes: Planes) -> None:
    """The control plane's side: a HelloReply of another version stops it."""
    path = planes.socket

    async def fake_data_plane() -> None:
        listener = await anyio.create_unix_listener(path)
        async with anyio.create_task_group() as tg, listener:

            async def answer(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    await stream.receive()
                    await stream.send(encode(HelloReply(VERSION + 1, 1, "t", False)))
                    await anyio.sleep(1)

            tg.start_soon(listener.serve, answer)
            remote = RemoteRuntime(path)
            with pytest.raises(
                DataPlaneError,
                match=rf"speaks protocol version {VERSION + 1}, this .* {VERSION}",
            ):
                await remote.run()
            tg.cancel_scope.cancel()

    anyio.run(fake_data_plane)


@pytest.mark.parametrize(
    "bad",
    [
        struct.pack(">I", 64 * 1024 * 1024 + 1),  # oversized: refused from the header
        struct.pack(">I", 3) + b"\xc1\xc1\xc1",  # not msgpack
        encode(Apply(1))[:-1],  # cut short, then closed
        encode(HelloReply(1, 1, "t", True)),  # a reply where a request goes
        struct.pack(">I", 9) + b"\x82\xa4type\xa5apply",  # a field missing
    ],
    ids=["oversized", "garbage", "truncated", "wrong-direction", "missing-field"],
)
@pytest.mark.parametrize("after_hello", [False, True], ids=["first", "after-hello"])
def test_a_bad_frame_closes_the_connection_not_the_data_plane(
    planes: Planes, bad: bytes, after_hello: bool
) -> None:
    dp = planes.start()
    raw = RawPlane(dp.socket)
    if after_hello:
        raw.hello()
    raw.sock.sendall(bad)
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.closed_by_peer()
    raw.close()
    assert dp.alive()

    async def scenario(remote: RemoteRuntime) -> None:
        assert await remote.running() is None

    with_remote(dp.socket, scenario)
    assert "Traceback" not in dp.log()


@pytest.mark.timing  # a bound on how fast: run alone (tools/test.sh)
def test_kill_9_of_the_data_plane_is_noticed_and_its_successor_runs_the_configuration(
    planes: Planes,
) -> None:
    first = planes.start()
    tcp = free_port()
    events: Events = []
    delta = one_channel("", tcp)

    async def scenario(remote: RemoteRuntime) -> None:
        await (
            await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b"<config/>"))
        ).apply()
        client = await blocking(connect, tcp)
        await blocking(exchange, client, master, b"before", b"kill")
        await eventually(lambda: kinds(events, "session-event", event="connected"))
        first.kill()
        noticed = anyio.current_time()
        await eventually(lambda: not remote.connected, timeout=1.0)
        assert anyio.current_time() - noticed < 1.0
        planes.start(wait=False)  # the supervisor's part
        await eventually(lambda: remote.stats.restarts == 1 and remote.connected, timeout=10)
        assert remote.stats.sessions_dropped == 1
        # the channel is back, on the same port, and relays
        again = await blocking(connect, tcp)
        await blocking(exchange, again, master, b"after", b"restart")
        assert await blocking(is_closed, client)  # the old session died with its process
        running = await remote.running()
        assert running is not None and running[1] == b"<config/>"
        assert running[0].channels["c"] == delta.channels["c"]
        again.close()
        client.close()

    with pty_device() as (master, device):
        with_remote(planes.socket, scenario, record(events))
    (dropped,) = kinds(events, "session-event", reason="data plane restarted")
    (connected, _) = kinds(events, "session-event", event="connected")
    assert dropped == {
        "channel": "c",
        "session-id": connected["session-id"],
        "event": "disconnected",
        "remote-address": "127.0.0.1",
        "remote-port": connected["remote-port"],
        "role": "primary",
        "reason": "data plane restarted",
    }
    closed = kinds(events, "port-event", event="closed")
    assert closed[0] == {"serial-port": "p", "event": "closed"}
    # the disconnect comes before the new data plane's own events
    opened = [i for i, (_, p) in enumerate(events) if p == {"serial-port": "p", "event": "opened"}]
    assert len(opened) == 2
    assert opened[0] < events.index(("session-event", dropped)) < opened[1]


@pytest.mark.parametrize("answered", [True, False], ids=["applied", "answer-lost"])
def test_sessions_a_commit_ended_are_not_reported_at_a_restart(
    planes: Planes, answered: bool
) -> None:
    """Stopping a channel is not a disconnect (no event): the control plane
    forgets its sessions when the commit applies.  Apply is not waited for,
    so the data plane may die before its answer comes (answer-lost: stopped,
    then killed, the apply never carried out); the commit stopped the
    channel all the same (the successor is given the new configuration), so
    its sessions are still the commit's: no "data plane restarted" event,
    none counted dropped."""
    first = planes.start()
    tcp = free_port()
    events: Events = []

    async def scenario(remote: RemoteRuntime) -> None:
        await (await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))).apply()
        client = await blocking(connect, tcp)
        await eventually(lambda: kinds(events, "session-event", event="connected"))
        transaction = await remote.prepare(Delta({}, {"c": None}), DocumentPatch.of_bytes(b""))
        if not answered:
            os.kill(first.pid, signal.SIGSTOP)
        await transaction.apply()  # sent (answer-lost: the data plane cannot carry it out)
        if answered:
            assert await blocking(is_closed, client)
        first.kill()
        planes.start(wait=False)
        await eventually(lambda: remote.stats.restarts == 1 and remote.connected, timeout=10)
        running = await remote.running()
        assert running is not None and running[0].channels == {}
        assert remote.stats.sessions_dropped == 0
        client.close()

    with pty_device() as (_, device):
        with_remote(planes.socket, scenario, record(events))
    assert kinds(events, "session-event", reason="data plane restarted") == []


def test_a_commit_whose_data_plane_died_before_apply_still_takes_effect(planes: Planes) -> None:
    first = planes.start()
    tcp1, tcp2 = free_port(), free_port()

    async def scenario(remote: RemoteRuntime) -> None:
        await (
            await remote.prepare(
                one_channel(dev1, tcp1, "c1", "p1"), DocumentPatch.of_bytes(b"<one/>")
            )
        ).apply()
        transaction = await remote.prepare(
            one_channel(dev2, tcp2, "c2", "p2"), DocumentPatch.of_bytes(b"<two/>")
        )
        first.kill()
        planes.start(wait=False)
        await transaction.apply()  # does not fail: the new data plane gets it
        running = await remote.running()
        assert running is not None
        assert sorted(running[0].channels) == ["c1", "c2"] and running[1] == b"<two/>"
        for tcp, master in ((tcp1, m1), (tcp2, m2)):
            client = await blocking(connect, tcp)
            await blocking(exchange, client, master, b"ping", b"pong")
            client.close()

    with pty_device() as (m1, dev1), pty_device() as (m2, dev2):
        with_remote(planes.socket, scenario)


def test_apply_does_not_wait_for_the_data_plane_and_what_follows_sees_it(
    planes: Planes,
) -> None:
    """Apply is sent, not waited for (a commit makes one round trip to the
    data plane, not two): it returns while the data plane cannot answer
    (stopped), and the next request, answered in order, sees the change."""
    dp = planes.start()
    tcp = free_port()

    async def scenario(remote: RemoteRuntime) -> None:
        transaction = await remote.prepare(
            one_channel(device, tcp), DocumentPatch.of_bytes(b"<one/>")
        )
        os.kill(dp.pid, signal.SIGSTOP)
        try:
            with anyio.fail_after(2):
                await transaction.apply()
        finally:
            os.kill(dp.pid, signal.SIGCONT)
        running = await remote.running()
        assert running is not None
        assert sorted(running[0].channels) == ["c"] and running[1] == b"<one/>"
        assert remote.stats.restarts == 0
        client = await blocking(connect, tcp)
        await blocking(exchange, client, master, b"ping", b"pong")
        client.close()

    with pty_device() as (master, device):
        with_remote(planes.socket, scenario)


def test_a_data_plane_that_never_answers_an_apply_is_killed(planes: Planes) -> None:
    """An apply is not waited for, but its answer is watched: a data plane
    that hangs on it is killed after the request timeout, and its
    successor runs the configuration that apply made running."""
    first = planes.start()
    tcp = free_port()

    async def scenario(remote: RemoteRuntime) -> None:
        transaction = await remote.prepare(
            one_channel(device, tcp), DocumentPatch.of_bytes(b"<one/>")
        )
        os.kill(first.pid, signal.SIGSTOP)
        try:
            await transaction.apply()
            await eventually(lambda: not first.alive(), timeout=5)
        finally:
            with contextlib.suppress(OSError):
                os.kill(first.pid, signal.SIGCONT)
        planes.start(wait=False)
        running = await remote.running()
        assert running is not None
        assert sorted(running[0].channels) == ["c"] and running[1] == b"<one/>"
        assert remote.stats.restarts == 1

    with pty_device() as (_master, device):
        with_remote(planes.socket, scenario, request_timeout=0.5)


def test_a_prepare_in_flight_fails_and_a_data_plane_that_stays_away_is_given_up(
    planes: Planes,
) -> None:
    dp = planes.start()
    tcp = free_port()

    async def main() -> None:
        remote = RemoteRuntime(planes.socket, reconnect_timeout=1.0)
        failures: list[BaseException] = []

        async def keep(task_status: anyio.abc.TaskStatus[None]) -> None:
            try:
                await remote.run(task_status=task_status)
            except DataPlaneUnavailable as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            await tg.start(keep)
            os.kill(dp.pid, signal.SIGSTOP)  # the prepare stays in flight...
            refused: list[PrepareError] = []

            async def attempt() -> None:
                try:
                    await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))
                except PrepareError as exc:
                    refused.append(exc)

            async with anyio.create_task_group() as inner:
                inner.start_soon(attempt)
                await anyio.sleep(0.2)
                dp.kill()  # ...until the data plane dies
            assert [e.faults for e in refused] == [
                [Fault("operation-failed", "data plane restarted", "", "")]
            ]
            lost = anyio.current_time()
            await eventually(lambda: failures, timeout=5)
            assert 0.9 <= anyio.current_time() - lost < 3.0
        # with no data plane: nothing runs, nothing can change
        assert await remote.snapshot() == Snapshot()
        await remote.clear_counters(None)
        with pytest.raises(PrepareError) as later:
            await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))
        assert later.value.faults[0].tag == "operation-failed"
        with pytest.raises(DataPlaneUnavailable):
            await remote.running()

    with pty_device() as (_, device):
        anyio.run(main)


def test_events_wait_for_a_control_plane_and_a_new_one_learns_what_is_open(
    planes: Planes,
) -> None:
    """A control plane that restarts gets the events it missed, reads the
    configuration from the data plane, and knows the sessions opened before
    it came: when the data plane then dies, they are reported."""
    dp = planes.start()
    tcp1, tcp2 = free_port(), free_port()
    events: Events = []

    async def first(remote: RemoteRuntime) -> socket.socket:
        await (await remote.prepare(delta, DocumentPatch.of_bytes(b"<both/>"))).apply()
        client = await blocking(connect, tcp1)
        await blocking(exchange, client, m1, b"a", b"b")
        await eventually(lambda: kinds(events, "session-event", event="connected"))
        return client

    async def second(remote: RemoteRuntime) -> None:
        # what happened while no control plane was connected comes first
        await eventually(lambda: len(kinds(events, "session-event", channel="c2")) == 2)
        assert [e["event"] for e in kinds(events, "session-event", channel="c2")] == [
            "connected",
            "disconnected",
        ]
        assert remote.applied is not None
        assert remote.applied[0] == delta.applied_to(RelayConfig({}, {}))
        assert remote.applied[1].to_bytes() == b"<both/>"
        dp.kill()
        planes.start(wait=False)
        await eventually(lambda: remote.stats.restarts == 1 and remote.connected, timeout=10)
        assert remote.stats.sessions_dropped == 1
        (dropped,) = kinds(events, "session-event", reason="data plane restarted")
        assert dropped["channel"] == "c1"
        assert dropped["remote-port"] == str(client.getsockname()[1])
        assert {e["serial-port"] for e in kinds(events, "port-event", event="closed")} == {
            "p1",
            "p2",
        }
        again = await blocking(connect, tcp2)  # given back to the new data plane
        await blocking(exchange, again, m2, b"c", b"d")
        again.close()

    with pty_device() as (m1, dev1), pty_device() as (m2, dev2):
        delta = Delta(
            {"p1": serial_port("p1", dev1), "p2": serial_port("p2", dev2)},
            {"c1": server_channel("c1", "p1", tcp1), "c2": server_channel("c2", "p2", tcp2)},
        )
        client = with_remote(planes.socket, first, record(events))
        other = connect(tcp2)  # no control plane is connected now
        exchange(other, m2, b"e", b"f")
        other.close()
        time.sleep(0.2)
        events.clear()
        with_remote(planes.socket, second, record(events))
        client.close()


@pytest.mark.timing  # a bound on how fast: run alone (tools/test.sh)
def test_sigterm_closes_every_port_and_session_within_1_5_s(planes: Planes) -> None:
    dp = planes.start()
    tcp = free_port()
    events: Events = []

    async def scenario(remote: RemoteRuntime) -> float:
        await (await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))).apply()
        client = await blocking(connect, tcp)
        await blocking(exchange, client, master, b"x", b"y")
        start = time.monotonic()
        dp.proc.send_signal(signal.SIGTERM)
        await blocking(dp.proc.wait, 5)
        took = time.monotonic() - start
        assert await blocking(is_closed, client)
        client.close()
        # the events of the shutdown were sent before the connection closed
        await eventually(lambda: kinds(events, "port-event", event="closed"))
        return took

    with pty_device() as (master, device):
        took = with_remote(planes.socket, scenario, record(events))
    assert dp.proc.returncode == 0
    assert took < 1.5
    assert not planes.socket.exists()
    assert "Traceback" not in dp.log()


def test_a_rise_of_dropped_bytes_is_an_event_at_most_once_a_second(planes: Planes) -> None:
    dp = planes.start()
    tcp = free_port()
    drops: list[tuple[float, dict[str, str]]] = []

    def sink(kind: str, payload: dict[str, str]) -> None:
        if kind == "drops":
            drops.append((time.monotonic(), payload))

    async def scenario(remote: RemoteRuntime) -> None:
        await (await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b""))).apply()
        await anyio.sleep(0.3)  # the port is open
        os.write(master, b"x" * 100)  # serial data with no session: dropped
        await eventually(lambda: drops, timeout=3)
        await anyio.sleep(0.1)
        os.write(master, b"y" * 50)
        await eventually(lambda: len(drops) == 2, timeout=3)
        await anyio.sleep(1.5)  # nothing dropped since: nothing more

    with pty_device() as (master, device):
        with_remote(dp.socket, scenario, sink)
    assert [p for _, p in drops] == [
        {"channel": "c", "dropped-bytes": "100", "increase": "100"},
        {"channel": "c", "dropped-bytes": "150", "increase": "50"},
    ]
    assert drops[1][0] - drops[0][0] >= 0.7  # looked at once a second; arrival jitters


def pty_channels(stack: contextlib.ExitStack, n: int) -> Delta:
    """``n`` server channels c0... on ports p0..., each a new pty held by
    ``stack``, listening on a free port."""
    devices = [stack.enter_context(pty_device())[1] for _ in range(n)]
    return Delta(
        {f"p{i}": serial_port(f"p{i}", d) for i, d in enumerate(devices)},
        {f"c{i}": server_channel(f"c{i}", f"p{i}", 0) for i in range(n)},
    )


def test_snapshot_requests_that_queue_up_share_one_reading(planes: Planes) -> None:
    dp = planes.start()
    n = 40
    with contextlib.ExitStack() as stack:
        delta = pty_channels(stack, n)
        raw = RawPlane(dp.socket)
        raw.hello()
        raw.send(Prepare(1, delta, DocumentPatch.of_bytes(b"")))
        assert raw.receive() == Prepared(1)
        raw.send(Apply(1))
        raw.receive()
        raw.sock.sendall(b"".join(encode(SnapshotRequest()) for _ in range(5)))
        replies = [raw.receive() for _ in range(5)]
        assert all(isinstance(r, SnapshotReply) and len(r.channels) == n for r in replies)
        assert all(r == replies[0] for r in replies)
        raw.send(Inspect())
        info = raw.receive()
        assert isinstance(info, InspectReply)
        assert info.channels == n
        assert info.snapshots_built == 1
        raw.close()


def test_shared_reads_are_never_older_than_the_caller() -> None:
    """Callers that come while a fetch runs share the next one, never the
    one in flight; a failed fetch fails its caller only."""

    async def main() -> None:
        fetched: list[int] = []
        release = anyio.Event()
        fail_next = [False]

        async def fetch() -> int:
            fetched.append(len(fetched) + 1)
            number = fetched[-1]
            await release.wait()
            if fail_next[0]:
                fail_next[0] = False
                raise OSError("lost")
            return number

        shared = SharedReads(fetch)
        got: dict[str, int] = {}

        async def read(name: str) -> None:
            got[name] = await shared.read()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read, "a")
            await anyio.wait_all_tasks_blocked()
            assert fetched == [1]  # a's fetch is in flight
            tg.start_soon(read, "b")
            tg.start_soon(read, "c")
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert got == {"a": 1, "b": 2, "c": 2} and shared.fetches == 2

        release = anyio.Event()
        fail_next[0] = True
        failures: list[BaseException] = []

        async def read_or_fail(name: str) -> None:
            try:
                await read(name)
            except OSError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_or_fail, "d")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(read_or_fail, "e")
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert len(failures) == 1 and got["e"] == 4 and fetched == [1, 2, 3, 4]

    anyio.run(main)


def test_whole_snapshots_asked_at_once_share_reads_that_are_changes(planes: Planes) -> None:
    """Four <get>s at once: the data plane reads for them one at a time
    (not four crossing reads, each then sent whole), every reading after
    the first a change against the one before; each caller gets every
    channel."""
    dp = planes.start()
    n = 30

    async def scenario(remote: RemoteRuntime) -> None:
        await (await remote.prepare(delta, DocumentPatch.of_bytes(b""))).apply()
        first = await remote.snapshot()
        assert len(first.channels) == n
        for _ in range(5):
            snapshots: list[Snapshot] = []

            async def get() -> None:
                snapshots.append(await remote.snapshot())  # noqa: B023 (awaited here)

            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(get)
            assert [len(s.channels) for s in snapshots] == [n] * 4
        info = await remote.inspect()
        # 1 + at most 2 per round of four (the first caller's, then the others')
        assert 2 <= info.snapshots_built <= 11, info
        assert info.snapshots_whole == 1, info

    with contextlib.ExitStack() as stack:
        delta = pty_channels(stack, n)
        with_remote(dp.socket, scenario)


def test_a_snapshot_of_many_channels_is_read_in_slices() -> None:
    async def main() -> None:
        runtime = RelayRuntime()
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            with contextlib.ExitStack() as stack:
                delta = pty_channels(stack, 3)
                await (await runtime.prepare(delta, DocumentPatch.of_bytes(b""))).apply()
                read = await runtime.read_states(budget=0, chunk=1)
                assert read.slices == 3 and read.fresh is None  # all read, one a slice
                assert [channel.name for channel, _ in read.states] == ["c0", "c1", "c2"]
                whole = await runtime.snapshot()
                assert [c.name for c in whole.channels] == ["c0", "c1", "c2"]
                assert [p.name for p in whole.ports] == ["p0", "p1", "p2"]
                await runtime.shutdown()

    anyio.run(main)


def test_io_that_came_during_a_slice_runs_before_the_next_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """yield_to_relays: a relay callback whose data came while a slice of
    long work ran goes before that work's next slice (with one sleep(0) it
    went after it: a round trip then waited for two slices at each hop).
    And first the CPU is offered to the other processes runnable on it
    (sched_yield): to the kernel, slices joined by sleep(0)s are one busy
    stretch, which held up the far ends of a link on the data plane's CPU
    (tools/bench_isolation.py: relay p99 under a <get> loop 1.7-2.3 ms
    without, 0.66-0.93 ms with, same sitting)."""
    from nf.runtime import relay
    from nf.runtime.relay import yield_to_relays

    order: list[str] = []
    real_yield = os.sched_yield
    monkeypatch.setattr(
        relay.os, "sched_yield", lambda: order.append("cpu offered") or real_yield()
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()

        def readable() -> None:
            order.append("relay")
            a.recv(1)

        loop.add_reader(a.fileno(), readable)
        try:
            await asyncio.sleep(0.01)
            b.send(b"x")  # comes during the slice
            await yield_to_relays()
            order.append("next slice")
        finally:
            loop.remove_reader(a.fileno())
            a.close()
            b.close()
        assert order == ["cpu offered", "relay", "next slice"]

    asyncio.run(main())


def test_a_commit_starting_many_channels_yields_to_the_loop_between_slices() -> None:
    """An apply starts START_SLICE channels between two yields: the relays
    (here a task counting loop iterations) keep running, and the events the
    starts cause come a slice at a time, so that the data plane sends them
    on before its backlog fills (at a 10 000-channel boot it dropped 9000)."""
    from nf.runtime.relay import START_SLICE

    count = 3 * START_SLICE + 7
    ticks = 0
    opened_at: list[int] = []

    def sink(kind: str, payload: dict[str, str]) -> None:
        if kind == "port-event" and payload.get("event") == "opened":
            opened_at.append(ticks)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0)

    async def main() -> None:
        runtime = RelayRuntime()
        runtime.add_event_sink(sink)
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            tg.start_soon(ticker)
            delta = Delta(
                {f"p{i}": serial_port(f"p{i}", "loop://") for i in range(count)},
                {f"c{i}": server_channel(f"c{i}", f"p{i}", 0) for i in range(count)},
            )
            await (await runtime.prepare(delta, DocumentPatch.of_bytes(b""))).apply()
            await eventually(lambda: len(opened_at) == count)
            await runtime.shutdown()
            tg.cancel_scope.cancel()

    anyio.run(main)
    per_tick = [opened_at.count(t) for t in sorted(set(opened_at))]
    assert max(per_tick) <= START_SLICE, per_tick
    assert len(per_tick) >= 4, per_tick


def test_waiting_events_go_out_many_to_a_write_in_order() -> None:
    """One write per event let a burst (a commit starting thousands of
    channels) outrun the sending; events go out EVENT_BATCH to a write,
    in order, and the ones of a write that fails are kept for the next
    control plane."""
    from nf.plane.dataplane import EVENT_BATCH, DataPlane

    class Writes:
        def __init__(self, fail: bool = False) -> None:
            self.writes: list[bytes] = []
            self.fail = fail

        async def send_frame(self, frame: bytearray) -> None:
            if self.fail:
                raise anyio.BrokenResourceError
            self.writes.append(bytes(frame))

    def events_in(data: bytes) -> list[str]:
        found = []
        while data:
            (size,) = struct.unpack(">I", data[:4])
            event = REPLIES.decode(data[4 : 4 + size])
            assert isinstance(event, Event)
            found.append(event.payload["n"])
            data = data[4 + size :]
        return found

    plane = DataPlane(RelayRuntime(), pid=1, started_at="now", backlog=5000)
    count = 2 * EVENT_BATCH + 3
    for i in range(count):
        plane.event("port-event", {"n": str(i)})
    broken = Writes(fail=True)
    with pytest.raises(anyio.BrokenResourceError):
        anyio.run(plane._flush, broken)  # type: ignore[arg-type]
    good = Writes()
    anyio.run(plane._flush, good)  # type: ignore[arg-type]
    assert len(good.writes) == 3
    assert [n for w in good.writes for n in events_in(w)] == [str(i) for i in range(count)]


def test_the_control_plane_decodes_only_states_whose_encoding_changed() -> None:
    """A snapshot's parts are kept encoded as the control plane reads them;
    StateCache decodes a part once and gives back the same object while the
    data plane sends the same bytes (an idle channel), so what is rendered
    from it can be kept by identity.  A filtered snapshot does not push the
    whole one's states out."""
    from nf.plane.messages import CONTROL_REPLIES, SnapshotParts, StateCache, encode_part
    from nf.runtime.transaction import ChannelState

    def state(name: str, rx: int) -> ChannelState:
        return ChannelState(name, "listening", None, (), (("rx-bytes", rx),))

    def reply(*channels: ChannelState) -> SnapshotParts:
        frame = encode(SnapshotParts(tuple(encode_part(c) for c in channels), ()))
        parts = CONTROL_REPLIES.decode(bytes(frame[4:]))
        assert isinstance(parts, SnapshotParts)
        return parts

    cache = StateCache()
    first = cache.snapshot(reply(state("a", 1), state("b", 1)), whole=True)
    assert first.channels == (state("a", 1), state("b", 1))
    one = cache.snapshot(reply(state("b", 1)), whole=False)
    assert one.channels[0] is first.channels[1]
    second = cache.snapshot(reply(state("a", 1), state("b", 2)), whole=True)
    assert second.channels[0] is first.channels[0]  # idle: the very object
    assert second.channels[1] == state("b", 2) and second.channels[1] is not first.channels[1]
    third = cache.snapshot(reply(state("a", 1), state("b", 1)), whole=True)
    assert third.channels[0] is first.channels[0]
    assert third.channels[1] is not first.channels[1]  # b's old state was let go


def test_settle_gc_freezes_what_lives_and_unfreezes_after_a_stop() -> None:
    """After an apply that started channels the collector's full passes no
    longer walk what exists (frozen); after one that stopped channels all
    is unfrozen, and the stopped channels' cyclic garbage is collected by
    the next collection."""
    import gc
    import weakref

    from nf.plane.dataplane import settle_gc

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    try:
        lives = Cycle()
        settle_gc(stopped=False)
        assert gc.get_freeze_count() > 0
        gone = weakref.ref(lives)
        del lives  # a channel stopped later: garbage among the frozen
        gc.collect()
        assert gone() is not None  # frozen: not walked by a collection
        settle_gc(stopped=True)
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()


def test_an_idle_channel_is_read_again_only_when_what_it_reports_changed() -> None:
    """The state objects of an idle channel are those of the last snapshot
    until something it reports changes (here its counters are cleared):
    then the snapshot has the new values, never stale ones."""

    async def main() -> None:
        runtime = RelayRuntime()
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            with pty_device() as (_master, device):
                delta = Delta({"p": serial_port("p", device)}, {"c": server_channel("c", "p", 0)})
                await (await runtime.prepare(delta, DocumentPatch.of_bytes(b""))).apply()
                first = (await runtime.read_states()).states
                read = await runtime.read_states()
                second = read.states
                assert second[0] is first[0]  # unchanged: the same frozen objects
                assert read.fresh == set()  # nothing read again
                await runtime.clear_counters(None)
                third = (await runtime.read_states()).states
                assert third[0] is not first[0]
                cleared = dict(third[0][0].counters)
                assert "last-cleared" in cleared and "last-cleared" not in dict(
                    first[0][0].counters
                )
                # any assignment to what a channel reports, its own or its
                # counters', is seen by the next read (change stamps)
                channel = runtime.channels["c"]
                changes: list[Callable[[], None]] = [
                    lambda: setattr(channel, "port_rx", channel.port_rx + 7),
                    lambda: setattr(channel, "last_error", "a new error"),
                    lambda: setattr(channel, "port_status", "error"),
                ]
                for name in ("dropped_bytes", "serial_to_net_bytes", "sessions_refused"):
                    changes.append(
                        lambda n=name: setattr(
                            channel.counters, n, getattr(channel.counters, n) + 3
                        )
                    )
                for change in changes:
                    before = (await runtime.read_states()).states[0]
                    change()
                    read = await runtime.read_states()
                    assert read.fresh == {0}, change
                    assert read.states[0] is not before and read.states[0] != before
                again = await runtime.read_states()
                assert again.fresh == set()
                counters = dict(again.states[0][0].counters)
                assert counters["dropped-bytes"] == 3 and counters["sessions-refused"] == 3
                await runtime.shutdown()

    anyio.run(main)


def test_a_hung_data_plane_is_killed_and_its_successor_runs_the_configuration(
    planes: Planes,
) -> None:
    """A data plane that stops answering (SIGSTOP: alive, its socket open)
    is taken for hung after the request timeout: killed, and once the
    supervisor has started another, the request is answered by it and the
    configuration is given back."""
    first = planes.start()
    tcp = free_port()

    async def scenario(remote: RemoteRuntime) -> None:
        await (
            await remote.prepare(one_channel(device, tcp), DocumentPatch.of_bytes(b"<config/>"))
        ).apply()
        os.kill(first.pid, signal.SIGSTOP)
        try:
            asked = anyio.current_time()
            async with anyio.create_task_group() as tg:

                async def supervisor() -> None:  # starts a new one once the old is gone
                    await eventually(lambda: not first.alive(), timeout=5)
                    planes.start(wait=False)

                tg.start_soon(supervisor)
                snapshot = await remote.snapshot()
            assert anyio.current_time() - asked >= 0.5
            assert [c.name for c in snapshot.channels] == ["c"]
            assert remote.stats.restarts == 1
            running = await remote.running()
            assert running is not None and running[1] == b"<config/>"
        finally:
            with contextlib.suppress(OSError):
                os.kill(first.pid, signal.SIGCONT)

    with pty_device() as (_master, device):
        with_remote(planes.socket, scenario, request_timeout=0.5)


def test_a_snapshot_frame_encodes_again_only_what_changed_and_equals_a_fresh_one() -> None:
    """The data plane's whole snapshot reads only the channels whose
    signature changed (or that have sessions) and re-encodes only those;
    asked ``since`` the snapshot the control plane keeps, it sends only
    those; what the control plane then holds equals a fresh snapshot."""
    from nf.plane.dataplane import DataPlane
    from nf.plane.messages import CONTROL_REPLIES, SnapshotParts, StateCache

    async def main() -> None:
        runtime = RelayRuntime()
        plane = DataPlane(runtime, pid=os.getpid(), started_at="")
        cache = StateCache()
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            with contextlib.ExitStack() as stack:
                delta = pty_channels(stack, 4)
                await (await runtime.prepare(delta, DocumentPatch.of_bytes(b""))).apply()
                await anyio.sleep(0.2)  # the ports opened

                async def frame() -> tuple[SnapshotParts, Snapshot]:
                    data = await plane.snapshot_frame(None, cache.since)
                    parts = CONTROL_REPLIES.decode(bytes(data[4:]))
                    assert isinstance(parts, SnapshotParts)
                    snapshot = cache.snapshot(parts, whole=True)
                    assert snapshot is not None
                    return parts, snapshot

                parts, first = await frame()
                assert parts.base is None and len(parts.channels) == 4  # whole: nothing kept
                assert plane._encoded is not None and plane._encoded.read.fresh is None
                parts, second = await frame()
                assert (parts.base, parts.changed, parts.channels) == (1, (), ())
                assert second == first and second.channels[0] is first.channels[0]
                assert second is first  # nothing changed: the very snapshot kept
                await runtime.clear_counters("c2")
                parts, changed = await frame()
                assert plane._encoded.read.fresh == {2}
                assert (parts.base, parts.changed, len(parts.channels)) == (2, (2,), 1)
                assert changed == await runtime.snapshot()  # read afresh, whole
                assert changed.channels[1] is first.channels[1]  # not decoded again
                assert "last-cleared" in dict(changed.channels[2].counters)
                assert "last-cleared" not in dict(changed.channels[1].counters)
                stale = await plane.snapshot_frame(None, 1)  # the control plane has another
                parts = CONTROL_REPLIES.decode(bytes(stale[4:]))
                assert isinstance(parts, SnapshotParts) and parts.base is None
                await runtime.shutdown()

    anyio.run(main)


def test_the_state_cache_applies_changes_of_the_snapshot_it_keeps_only() -> None:
    """A change of the whole snapshot kept decodes only its states; the
    same reply twice (requests that queued together) is the same snapshot;
    a change of another snapshot is refused (None: ask whole)."""
    from nf.plane.messages import CONTROL_REPLIES, SnapshotParts, StateCache, encode_part
    from nf.runtime.transaction import ChannelState

    def channel(name: str, rx: int) -> ChannelState:
        return ChannelState(name, "listening", None, (), (("rx-bytes", rx),))

    def port(name: str) -> PortState:
        return PortState(name, "up", None, 0, 0)

    def reply(message: SnapshotParts) -> SnapshotParts:
        parts = CONTROL_REPLIES.decode(bytes(encode(message)[4:]))
        assert isinstance(parts, SnapshotParts)
        return parts

    def raw(*values: object) -> tuple[msgspec.Raw, ...]:
        return tuple(encode_part(v) for v in values)

    cache = StateCache()
    assert cache.since is None
    whole = reply(
        SnapshotParts(raw(channel("a", 1), channel("b", 1)), raw(port("p"), port("q")), 5)
    )
    first = cache.snapshot(whole, whole=True)
    assert first is not None and cache.since == 5
    change = reply(SnapshotParts(raw(channel("b", 2)), raw(port("q")), 6, 5, (1,)))
    second = cache.snapshot(change, whole=True)
    assert second is not None and cache.since == 6
    assert second.channels == (channel("a", 1), channel("b", 2))
    assert second.channels[0] is first.channels[0]
    assert cache.snapshot(change, whole=True) is second  # the same reply again
    other = reply(SnapshotParts(raw(channel("b", 3)), raw(port("q")), 8, 7, (1,)))
    assert cache.snapshot(other, whole=True) is None and cache.since == 6


def test_a_prepare_that_changes_no_port_copies_nothing_and_apply_makes_the_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The data plane's prepare reads only the channels a delta names (and
    their ports) when it changes no serial port: the whole new
    configuration, a copy of every channel, is made by apply, which the
    control plane does not wait for.  What runs after apply is the delta
    applied to what ran: a channel changed in place, one deleted, one
    created on a port that was there."""
    import dataclasses

    copies: list[str] = []
    applied_to = Delta.applied_to

    def counted(self: Delta, config: RelayConfig) -> RelayConfig:
        copies.append("copy")
        return applied_to(self, config)

    async def main() -> None:
        runtime = RelayRuntime()
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            first = Delta(
                {f"p{i}": serial_port(f"p{i}", "loop://") for i in range(50)},
                {f"c{i}": server_channel(f"c{i}", f"p{i}", 0) for i in range(50)},
            )
            await (await runtime.prepare(first, DocumentPatch.of_bytes(b""))).apply()
            before = runtime.config
            c1 = runtime.channels["c1"]
            monkeypatch.setattr(Delta, "applied_to", counted)
            delta = Delta(
                {},
                {
                    "c1": dataclasses.replace(before.channels["c1"], keepalive=31),
                    "c2": None,
                    "x": server_channel("x", "p2", 0),
                },
            )
            transaction = await runtime.prepare(delta, DocumentPatch.of_bytes(b""))
            assert copies == []  # prepare copied nothing
            await transaction.apply()
            assert copies == ["copy"]
            assert runtime.config == applied_to(delta, before)
            assert runtime.channels["c1"] is c1 and c1.cfg.keepalive == 31  # in place
            assert "c2" not in runtime.channels and "x" in runtime.channels
            await runtime.shutdown()
            tg.cancel_scope.cancel()

    anyio.run(main)
