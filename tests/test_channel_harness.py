"""The channel logic with both ends in memory (tests/channelpair.py): a real
ChannelRuntime and Server, a MemoryLink for the serial port, MemoryTransports
for the TCP sessions, a FakeClock for the timers.  Each test runs in
milliseconds; the end-to-end tests keep what needs sockets, ptys and NETCONF.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import anyio
from channelpair import HIGH, channel_config, channel_pair

from nf.protocol.arbitration import QUEUE_LIMIT, Role
from nf.runtime.serial import WRITE_HIGH
from nf.runtime.server import AllowedPeers

P, S = Role.PRIMARY, Role.SECONDARY


def in_loop(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def run() -> None:
        anyio.run(test)

    return run


# -- one session ----------------------------------------------------------------------------
@in_loop
async def test_primary_relays_both_ways_and_counts() -> None:
    async with channel_pair() as p:
        assert p.channel.oper_status == "listening"
        p.link.inject(b"nobody")  # no session: dropped, counted
        assert p.counters["dropped-bytes"] == 6
        t = p.connect()
        assert t is not None
        assert p.channel.oper_status == "up"
        t.send(b"hello")
        assert p.link.take() == b"hello"
        p.link.inject(b"world")
        p.link.inject(b"!")
        assert t.recv() == b"world!"
        assert t.writes == [b"world", b"!"]  # passed through as read, not copied
        c = p.counters
        assert c["net-to-serial-bytes"] == 5
        assert (c["serial-to-net-bytes"], c["serial-to-net-frames"]) == (6, 2)
        assert (c["sessions-accepted"], c["sessions-refused"]) == (1, 0)
        (row,) = p.channel.session_rows()
        assert (row.rx_bytes, row.tx_bytes, row.remote[0]) == (5, 6, "127.0.0.1")
        t.hang_up()
        await p.settle()
        assert t.gone and not p.channel.sessions
        assert p.channel.oper_status == "listening"
        events = p.session_events()
        assert [e["event"] for e in events] == ["connected", "disconnected"]
        assert events[0]["status"] == "active" and events[0]["role"] == "primary"
        assert events[1]["reason"] == "closed by peer" and "status" not in events[1]


@in_loop
async def test_a_busy_role_refuses_without_takeover() -> None:
    async with channel_pair() as p:
        first = p.connect()
        assert first is not None
        assert p.connect() is None
        assert (p.counters["sessions-accepted"], p.counters["sessions-refused"]) == (1, 1)
        p.link.inject(b"still yours")
        assert first.recv() == b"still yours" and not first.is_closing()


@in_loop
async def test_takeover_replaces_a_session_that_stopped_reading() -> None:
    """The old session is aborted at once (no grace), what it never took
    is dropped-bytes, and its hold on the serial port goes with it; the new
    session relays both ways.  (tests/test_relay_modes.py takes over a live
    session through real sockets and the pty.)"""
    async with channel_pair(channel_config(takeover=True)) as p:
        old = p.connect()
        assert old is not None
        old.stall()
        p.link.inject(b"x" * (HIGH + 1000))
        assert p.link.paused, "a full session buffer pauses serial reading"
        new = p.connect()
        assert new is not None
        assert old.aborted and not p.link.paused
        assert p.counters["dropped-bytes"] == HIGH + 1000
        await p.settle()
        assert old.gone
        p.link.inject(b"to new")
        assert new.recv() == b"to new"
        new.send(b"mine")
        assert p.link.take() == b"mine"
        assert [s.role for s in p.channel.session_rows()] == [P]
        events = p.session_events()
        assert [(e["event"], e.get("reason")) for e in events] == [
            ("connected", None),
            ("disconnected", "taken over"),
            ("connected", None),
        ]
        assert (p.counters["sessions-accepted"], p.counters["sessions-refused"]) == (2, 0)


# -- allowed-peer -------------------------------------------------------------------------
@in_loop
async def test_a_peer_not_allowed_is_refused_and_counted() -> None:
    async with channel_pair(channel_config(allowed=("10.0.0.0/8",))) as p:
        assert p.connect(address="127.0.0.1") is None
        assert (p.counters["sessions-accepted"], p.counters["sessions-refused"]) == (0, 1)
        assert p.channel.oper_status == "listening" and not p.session_events()
        p.link.inject(b"nobody")
        assert p.counters["dropped-bytes"] == 6
        t = p.connect(address="10.1.2.3")
        assert t is not None
        t.send(b"in")
        assert p.link.take() == b"in"


def test_allowed_peer_address_forms() -> None:
    v4 = AllowedPeers(("10.0.0.0/8", "192.168.1.7"))
    assert "10.200.0.1" in v4 and "192.168.1.7" in v4
    assert "::ffff:10.0.0.9" in v4, "an IPv4 peer of a dual-stack socket"
    assert "192.168.1.8" not in v4 and "11.0.0.1" not in v4
    assert "not an address" not in v4
    v6 = AllowedPeers(("fe80::/10",))
    assert "fe80::1%eth0" in v6 and "2001:db8::1" not in v6
    assert "anything" in AllowedPeers(())


# -- primary and secondary ---------------------------------------------------------------
@in_loop
async def test_secondary_raw() -> None:
    async with channel_pair(channel_config(response_mode="raw")) as p:
        primary, secondary = p.connect(P), p.connect(S)
        assert primary is not None and secondary is not None
        assert p.statuses() == {"primary": "active", "secondary": "active"}
        primary.send(b"P1")
        secondary.send(b"S1")
        assert p.link.take() == b"P1S1"
        p.link.inject(b"both")
        assert primary.recv() == b"both" and secondary.recv() == b"both"
        c = p.counters
        assert c["net-to-serial-bytes"] == 4
        assert c["serial-to-net-bytes"] == 8  # 4 bytes to each session
        assert c["ignored-bytes"] == 0


@in_loop
async def test_secondary_failover() -> None:
    async with channel_pair(channel_config(response_mode="failover")) as p:
        primary, secondary = p.connect(P), p.connect(S)
        assert primary is not None and secondary is not None
        assert p.statuses() == {"primary": "active", "secondary": "backup"}
        secondary.send(b"ignored")
        assert p.counters["ignored-bytes"] == 7 and p.link.take() == b""
        p.link.inject(b"to primary")
        assert primary.recv() == b"to primary" and secondary.recv() == b""
        primary.send(b"p")
        assert p.link.take() == b"p"

        # the primary goes away: the backup becomes active
        primary.hang_up()
        await p.settle()
        assert p.statuses() == {"secondary": "active"}
        role_change = p.session_events()[-1]
        assert role_change["event"] == "role-change" and role_change["status"] == "active"
        secondary.send(b"s-active")
        assert p.link.take() == b"s-active"
        p.link.inject(b"to secondary")
        assert secondary.recv() == b"to secondary"

        # a primary that comes back waits until it sends
        primary = p.connect(P)
        assert primary is not None
        assert p.statuses() == {"primary": "waiting", "secondary": "active"}
        p.link.inject(b"still s")
        assert secondary.recv() == b"still s" and primary.recv() == b""
        secondary.send(b"s2")
        assert p.link.take() == b"s2"
        primary.send(b"take")
        assert p.link.take() == b"take"
        assert p.statuses() == {"primary": "active", "secondary": "backup"}
        p.link.inject(b"back")
        assert primary.recv() == b"back" and secondary.recv() == b""
        secondary.send(b"xx")
        assert p.counters["ignored-bytes"] == 9 and p.link.take() == b""


@in_loop
async def test_secondary_slotted() -> None:
    slot = 0.4
    async with channel_pair(channel_config(response_mode="slotted", slot_ms=400)) as p:
        primary, secondary = p.connect(P), p.connect(S)
        assert primary is not None and secondary is not None
        assert p.statuses() == {"primary": "active", "secondary": "active"}
        p.link.inject(b"no slot")  # goes to every session
        assert primary.recv() == b"no slot" and secondary.recv() == b"no slot"

        # the primary opens a slot; the secondary's request is queued
        primary.send(b"req-p")
        assert p.link.take() == b"req-p"
        secondary.send(b"req-s")
        assert p.statuses() == {"primary": "active", "secondary": "waiting"}
        assert p.link.take() == b"", "the other session's data is queued"
        assert p.channel.next_deadline() == p.clock() + slot
        p.advance(slot / 2)
        p.link.inject(b"resp-p")  # restarts T
        assert primary.recv() == b"resp-p" and secondary.recv() == b""
        p.advance(slot * 0.99)
        assert p.link.take() == b""
        # at the end of the slot the queue is written and opens the secondary's slot
        p.advance(slot * 0.02)
        assert p.link.take() == b"req-s"
        assert p.statuses() == {"primary": "waiting", "secondary": "active"}
        p.link.inject(b"resp-s")
        assert secondary.recv() == b"resp-s" and primary.recv() == b""
        # T passes with no traffic: no slot, both active again
        p.advance(slot)
        assert p.statuses() == {"primary": "active", "secondary": "active"}

        # queue overflow beyond 64 KiB is ignored and counted
        primary.send(b"P")
        assert p.link.take() == b"P"
        big = bytes(range(256)) * 280  # 71680 bytes
        secondary.send(big)
        assert p.counters["ignored-bytes"] == len(big) - QUEUE_LIMIT
        p.advance(slot)
        assert p.link.take() == big[:QUEUE_LIMIT]
        p.advance(slot)
        assert set(p.statuses().values()) == {"active"}

        # the owner disconnecting ends the slot at once
        secondary.send(b"own")
        assert p.link.take() == b"own"
        primary.send(b"queued")
        assert p.link.take() == b""
        secondary.hang_up()
        await p.settle()
        assert p.link.take() == b"queued"  # no time passed
        assert p.statuses() == {"primary": "active"}


# -- packing and timers ------------------------------------------------------------------
@in_loop
async def test_packing_delimiter_size_and_delay() -> None:
    cfg = channel_config(delimiter=ord("\n"), max_frame_size=8, frame_delay_ms=100)
    async with channel_pair(cfg) as p:
        t = p.connect()
        assert t is not None
        p.link.inject(b"ab\ncd")
        assert t.writes == [b"ab\n"]
        p.link.inject(b"efghijkl")
        assert t.writes == [b"ab\n", b"cdefghij"]  # cut at max-frame-size
        assert p.channel.next_deadline() == p.clock() + 0.1
        p.advance(0.05)
        assert len(t.writes) == 2
        p.advance(0.06)
        assert t.writes[2:] == [b"kl"]  # the frame delay passed
        c = p.counters
        assert (c["serial-to-net-bytes"], c["serial-to-net-frames"]) == (13, 3)


@in_loop
async def test_closing_a_session_flushes_its_partial_frame() -> None:
    cfg = channel_config(delimiter=ord("\n"), inactivity_timeout=5)
    async with channel_pair(cfg) as p:
        t = p.connect()
        assert t is not None
        p.link.inject(b"tail")
        assert t.writes == []
        p.advance(5)  # inactivity: closed by us, the frame goes out first
        assert t.writes == [b"tail"]
        await p.settle()
        assert t.gone
        assert p.session_events()[-1]["reason"] == "inactivity timeout"


@in_loop
async def test_inactivity_timeout_closes_an_idle_session() -> None:
    async with channel_pair(channel_config(inactivity_timeout=1)) as p:
        t = p.connect()
        assert t is not None
        # traffic in either direction keeps it open past the timeout
        for step in range(4):
            p.advance(0.6)
            if step % 2:
                p.link.inject(b"s")
                assert t.recv() == b"s"
            else:
                t.send(b"n")
                assert p.link.take() == b"n"
        assert p.channel.next_deadline() == p.clock() + 1
        p.advance(0.99)
        assert not t.is_closing()
        p.advance(0.01)
        assert t.is_closing()
        await p.settle()
        assert t.gone and p.channel.oper_status == "listening"
        assert p.session_events()[-1]["reason"] == "inactivity timeout"
        assert p.channel.next_deadline() is None


@in_loop
async def test_the_real_timer_task_fires_with_the_injected_clock() -> None:
    """No tick from the test: the channel's own timer task sees the deadline."""
    async with channel_pair(channel_config(frame_delay_ms=50)) as p:
        t = p.connect()
        assert t is not None
        p.link.inject(b"abc")
        assert t.writes == []
        p.clock.now += 0.05
        await p.settle()
        with anyio.fail_after(2):
            while not t.writes:
                await anyio.sleep(0.01)
        assert t.writes == [b"abc"]


# -- flow control and losses ---------------------------------------------------------------
@in_loop
async def test_a_full_session_or_tty_stalls_only_its_own_direction() -> None:
    async with channel_pair() as p:
        t = p.connect()
        assert t is not None
        t.stall()
        p.link.inject(b"x" * (HIGH + 1))
        assert p.link.paused
        p.link.inject(b"later")  # waits in the tty
        t.send(b"still")  # the other direction flows
        assert p.link.take() == b"still"
        t.drain()
        assert not p.link.paused
        assert t.recv() == b"x" * (HIGH + 1) + b"later"

        p.link.block()
        t.send(b"y" * (WRITE_HIGH + 1))
        assert not t.reading, "a full tty pauses reading the sessions"
        t.send(b"wait")
        p.link.inject(b"out")  # serial -> net keeps flowing
        assert t.recv() == b"out"
        p.link.unblock()
        assert t.reading
        assert p.link.take() == b"y" * (WRITE_HIGH + 1) + b"wait"
        assert p.counters["dropped-bytes"] == 0
        assert p.counters["net-to-serial-bytes"] == 5 + WRITE_HIGH + 1 + 4


@in_loop
async def test_a_session_joining_a_full_tty_starts_paused() -> None:
    async with channel_pair(channel_config(response_mode="raw")) as p:
        first = p.connect(S)
        assert first is not None
        p.link.block()
        first.send(b"z" * (WRITE_HIGH + 1))
        t = p.connect()
        assert t is not None and not t.reading
        p.link.unblock()
        assert t.reading


@in_loop
async def test_stopping_counts_what_the_tty_never_took() -> None:
    async with channel_pair() as p:
        t = p.connect()
        assert t is not None
        p.link.block()
        t.send(b"lost!")
        await p.channel.stop()
        assert p.counters["dropped-bytes"] == 5
        assert p.link.closed and t.is_closing()
        assert ("port-event", {"serial-port": "p", "event": "closed"}) in p.events
        await p.settle()
        assert t.gone
        assert p.session_events()[-1]["event"] == "connected", "stopping is not a disconnect"


@in_loop
async def test_a_lost_port_drops_what_it_could_not_write_and_reports() -> None:
    async with channel_pair() as p:
        t = p.connect()
        assert t is not None
        p.link.block()
        t.send(b"abc")
        assert p.link.sink is not None
        p.link.sink.serial_lost("memory: hang-up")
        await p.settle()
        assert p.channel.port_status == "error" and p.channel.oper_status == "down"
        assert p.channel.last_error == "memory: hang-up"
        assert p.link.closed and t.reading, "a lost port no longer holds the sessions"
        t.send(b"12")  # no port: dropped
        assert p.counters["dropped-bytes"] == 5


# -- peer mode -------------------------------------------------------------------------------
@in_loop
async def test_peer_frames_go_to_every_destination_and_allowed_datagrams_to_serial() -> None:
    cfg = channel_config(
        "peer",
        delimiter=ord(";"),
        allowed=("10.0.0.0/8",),
        destinations=(("10.0.0.1", 7000), ("10.0.0.2", 7001)),
    )
    async with channel_pair(cfg) as p:
        peer = p.channel.peer
        assert peer is not None and p.channel.oper_status == "up"
        p.link.inject(b"a;b")
        assert p.udp.sent == [(b"a;", "10.0.0.1", 7000), (b"a;", "10.0.0.2", 7001)]
        c = p.counters
        assert (c["serial-to-net-bytes"], c["serial-to-net-frames"]) == (4, 2)
        peer.datagram_received(b"in", "10.9.9.9")
        assert p.link.take() == b"in"
        peer.datagram_received(b"outsider", "192.0.2.1")
        assert p.link.take() == b"" and p.counters["dropped-bytes"] == 8
        p.link.block()
        peer.datagram_received(b"f" * (WRITE_HIGH + 1), "10.9.9.9")
        peer.datagram_received(b"late", "10.9.9.9")  # the tty is full: dropped
        assert p.counters["dropped-bytes"] == 12
        p.udp.refuse = OSError(101, "Network is unreachable")
        p.link.inject(b";")
        assert p.counters["dropped-bytes"] == 12 + 2 * 2  # "b;" to each destination
        assert p.channel.last_error == "send to 10.0.0.2:7001: Network is unreachable"
