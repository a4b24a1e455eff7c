"""The engine over the REAL relay runtime: a failure at every prepare step,
and an abort after a prepare that succeeded, release exactly what that
prepare acquired and touch nothing that ran before.

The commit adds two channels whose prepare takes six resources, in this
order (channels by name, then link, listener, secondary, udp, group):

  a (server):  pty serial link, TCP listener, TCP secondary listener
  b (peer):    pty serial link, UDP socket, multicast group socket

Each step is made to fail for real: a serial device that is not there (an
unplugged adapter), or the port it wants taken by the test beforehand.
Channel ``z``, running before the commit, must keep running untouched.
Every resource is checked closed (or not) one by one, and the process's
open file descriptors must be exactly those of before the commit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from relayhelpers import (
    channel_xml,
    config,
    destination_xml,
    listen_xml,
    port_xml,
    pty_device,
    secondary_xml,
    server_xml,
)

from nf.config import load_document
from nf.config.errors import ConfigError
from nf.config.tree import Node
from nf.model import ChannelConfig, SerialPortConfig
from nf.runtime import relay
from nf.runtime.relay import RelayRuntime
from nf.runtime.udp import Datagrams
from nf.schema import default_schema
from nf.store.engine import CommitEvent, Engine, replace_with

SCHEMA = default_schema()
GROUP = f"239.255.{os.getpid() % 250}.{os.getppid() % 250 + 1}"


def tree(body: str) -> Node:
    parsed, errors = load_document(config(body), SCHEMA)
    assert errors == []
    return parsed


def multicast_on_loopback() -> str | None:
    """Why a group cannot be joined on lo here, or None when it can."""
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((GROUP, 0))
            membership = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1"))
            probe.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError as exc:
            return f"multicast on lo is not usable here: {exc}"
    return None


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def closed(resource: Any) -> bool:
    """Whether a resource the relay acquired has been released."""
    if isinstance(resource, Datagrams):
        return resource.sock.fileno() == -1
    if isinstance(resource, socket.socket):  # a TCP listener
        return resource.fileno() == -1
    return not resource._port.is_open  # a serial link


@dataclass
class Step:
    channel: str
    resource: str
    tag: str
    leaf: str


STEPS = [
    Step("a", "link", "resource-denied", "serial-port"),
    Step("b", "link", "resource-denied", "serial-port"),
    Step("a", "listener", "in-use", "listen/port"),
    Step("a", "secondary", "in-use", "secondary/port"),
    Step("b", "udp", "in-use", "listen/port"),
    Step("b", "group", "in-use", "multicast-group"),
]
"""In the order prepare acquires them: the serial ports first, all in one
worker thread, then each channel's sockets."""


class Spy:
    """Records what the runtime's resource acquisition hands out, in order
    (it acquires for real: only watched): the serial ports prepare opens
    (``_open_links``) and the sockets it binds (``_acquire``)."""

    def __init__(self, runtime: RelayRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.acquired: list[tuple[str, str, Any]] = []
        real = runtime._acquire
        real_links = relay._open_links

        async def acquire(
            cfg: ChannelConfig, port: SerialPortConfig, what: str, boot: bool = False
        ) -> Any:
            resource = await real(cfg, port, what, boot)
            self.acquired.append((cfg.name, what, resource))
            return resource

        def open_links(ports: list[tuple[str, SerialPortConfig]], boot: bool) -> Any:
            links = real_links(ports, boot)
            self.acquired.extend((name, "link", link) for name, link in links.items())
            return links

        runtime._acquire = acquire  # type: ignore[method-assign]
        monkeypatch.setattr(relay, "_open_links", open_links)


@dataclass
class Setup:
    base: Node
    new: Node
    tcp_z: int


def setup(stack: ExitStack, tmp_path: Path, fail: Step | None) -> Setup:
    """Devices and ports of the three channels; the resource ``fail``
    names is made unavailable (its port taken, its device absent)."""
    devices = {name: stack.enter_context(pty_device())[1] for name in ("z", "a", "b")}
    if fail is not None and fail.resource == "link":
        devices[fail.channel] = str(tmp_path / f"unplugged-{fail.channel}")

    def held(kind: int, address: str = "127.0.0.1", port: int = 0) -> socket.socket:
        sock = stack.enter_context(socket.socket(socket.AF_INET, kind))
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen()
        return sock

    # every port is bound now, by the test; those that must be free are let go
    tcp = {name: held(socket.SOCK_STREAM) for name in ("z", "listener", "secondary")}
    udp = held(socket.SOCK_DGRAM)
    udp_port = udp.getsockname()[1]
    ports = {name: sock.getsockname()[1] for name, sock in tcp.items()}
    for name, sock in tcp.items():
        if fail is None or fail.resource != name:
            sock.close()
    if fail is None or fail.resource != "udp":
        udp.close()
    if fail is not None and fail.resource == "group":
        held(socket.SOCK_DGRAM, GROUP, udp_port)  # no SO_REUSEADDR: the relay's bind fails
    base = port_xml("pz", devices["z"]) + server_xml("z", "pz", ports["z"])
    new = (
        base
        + port_xml("pa", devices["a"])
        + port_xml("pb", devices["b"])
        + server_xml("a", "pa", ports["listener"], secondary_xml(ports["secondary"], "raw"))
        + channel_xml(
            "b",
            "pb",
            "peer",
            listen_xml(udp_port)
            + destination_xml(9)
            + f"<multicast-group>{GROUP}</multicast-group>",
        )
    )
    return Setup(tree(base), tree(new), ports["z"])


async def with_runtime(scenario: Callable[[RelayRuntime], Any]) -> Any:
    runtime = RelayRuntime()
    async with anyio.create_task_group() as tg:
        await tg.start(runtime.run)
        try:
            return await scenario(runtime)
        finally:
            await runtime.shutdown()


def serving(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


@pytest.mark.parametrize(
    "step", [None, *STEPS], ids=lambda s: f"{s.channel}-{s.resource}" if s else "none"
)
def test_a_failure_at_any_prepare_step_releases_what_was_acquired(
    tmp_path: Path, step: Step | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = multicast_on_loopback()
    if reason:
        pytest.skip(reason)
    events: list[CommitEvent] = []
    with ExitStack() as stack:
        s = setup(stack, tmp_path, step)

        async def scenario(runtime: RelayRuntime) -> None:
            engine = Engine(SCHEMA, runtime, Node(), [events.append])
            assert await engine.boot(s.base) == []
            z = runtime.channels["z"]
            z_resources = list(z.res.items().values())
            spy = Spy(runtime, monkeypatch)
            before = open_fds()
            errors = await engine.change(replace_with(s.new), 1)
            await anyio.sleep(0.05)  # anything left running would show now
            if step is None:
                assert errors == []
                assert sorted(runtime.channels) == ["a", "b", "z"]
                assert [(c, r) for c, r, _ in spy.acquired] == [
                    (f.channel, f.resource) for f in STEPS
                ]
                assert not any(closed(r) for _, _, r in spy.acquired)
                assert engine.running is s.new and len(events) == 2
                return
            k = STEPS.index(step)
            assert [(e.tag, e.path) for e in errors] == [
                (
                    step.tag,
                    f"/soip:serial-over-ip/soip:channel[soip:name='{step.channel}']/"
                    + "/".join(f"soip:{part}" for part in step.leaf.split("/")),
                )
            ], errors
            # exactly the steps before k acquired, and each of them released
            assert [(c, r) for c, r, _ in spy.acquired] == [
                (f.channel, f.resource) for f in STEPS[:k]
            ]
            assert [closed(r) for _, _, r in spy.acquired] == [True] * k
            # nothing acquired is left open (an fd of before may have been
            # closed meanwhile by the garbage collector: z's are checked below)
            assert open_fds() - before == set()
            # nothing that ran before was touched
            assert runtime.channels == {"z": z}
            assert list(z.res.items().values()) == z_resources
            assert not any(closed(r) for r in z_resources)
            assert await anyio.to_thread.run_sync(serving, s.tcp_z)
            assert engine.running is s.base and runtime.config.channels.keys() == {"z"}
            assert len(events) == 1  # the boot's only

        anyio.run(with_runtime, scenario)


@pytest.mark.parametrize("how", ["ready fails", "cancelled"])
def test_abort_after_prepare_releases_exactly_what_prepare_acquired(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between prepare and apply the change is abandoned.  The commit adds
    channel a and changes z (its keepalive, a live change: z keeps running
    and is only reconfigured at apply), so prepare acquires a's three
    resources: abort must close the three and leave z's, still serving z,
    alone."""
    events: list[CommitEvent] = []
    with ExitStack() as stack:
        pz = stack.enter_context(pty_device())[1]
        pa = stack.enter_context(pty_device())[1]
        probes = [stack.enter_context(socket.socket()) for _ in range(3)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        tz, ta, ts = (probe.getsockname()[1] for probe in probes)
        for probe in probes:
            probe.close()
        base = tree(port_xml("pz", pz) + server_xml("z", "pz", tz))
        new = tree(
            port_xml("pz", pz)
            + port_xml("pa", pa)
            + server_xml("z", "pz", tz, "<keepalive>30</keepalive>")
            + server_xml("a", "pa", ta, secondary_xml(ts, "raw"))
        )

        async def scenario(runtime: RelayRuntime) -> None:
            engine = Engine(SCHEMA, runtime, Node(), [events.append])
            assert await engine.boot(base) == []
            z = runtime.channels["z"]
            z_resources = list(z.res.items().values())
            spy = Spy(runtime, monkeypatch)
            before = open_fds()

            with anyio.CancelScope() as scope:

                async def ready() -> None:
                    if how == "cancelled":
                        scope.cancel()
                    else:
                        raise OSError(28, "No space left on device")

                try:
                    errors: list[ConfigError] | None = await engine.change(
                        replace_with(new), 1, ready=ready
                    )
                except OSError:
                    errors = None
                else:
                    raise AssertionError(f"the change went on: {errors}")
            assert (how == "cancelled") == scope.cancelled_caught
            assert [(c, r) for c, r, _ in spy.acquired] == [
                ("a", "link"),
                ("a", "listener"),
                ("a", "secondary"),
            ]
            assert all(closed(r) for _, _, r in spy.acquired)
            # nothing acquired is left open (an fd of before may have been
            # closed meanwhile by the garbage collector: z's are checked below)
            assert open_fds() - before == set()
            assert runtime.channels == {"z": z}
            assert list(z.res.items().values()) == z_resources
            assert not any(closed(r) for r in z_resources)
            assert await anyio.to_thread.run_sync(serving, tz)
            assert engine.running is base and len(events) == 1
            # the same change, not abandoned this time, goes through: z is
            # changed in place, with its own link and listener
            assert await engine.change(replace_with(new), 1) == []
            assert runtime.channels["z"] is z and sorted(runtime.channels) == ["a", "z"]
            assert z.cfg.keepalive == 30 and z.res.listener is z_resources[1]

        anyio.run(with_runtime, scenario)
