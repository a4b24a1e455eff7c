"""ChannelRuntime.reconfigure, a commit's live change (nf/liveness.py),
in memory (tests/channelpair.py): what each live leaf does to the sessions,
the framers and the arbiter, byte for byte and with a fake clock.  The
same changes under real traffic through ptys and sockets are in
tests/test_inplace.py."""

from __future__ import annotations

import dataclasses

from channelpair import PORT, ChannelPair, MemoryTransport, channel_config, channel_pair
from test_channel_harness import in_loop

from nf.model import PackingConfig, SecondaryConfig
from nf.protocol.arbitration import Role, SlottedArbiter

P, S = Role.PRIMARY, Role.SECONDARY
SLOTTED = channel_config(response_mode="slotted", slot_ms=1000)


def slot_with_a_queue(p: ChannelPair) -> tuple[MemoryTransport, MemoryTransport]:
    """Both sessions of a slotted channel: the primary owns a slot, the
    secondary's b"queued" waits for it."""
    primary, secondary = p.connect(P), p.connect(S)
    assert primary is not None and secondary is not None
    primary.send(b"req")
    secondary.send(b"queued")
    return primary, secondary


@in_loop
async def test_a_new_framer_takes_over_at_a_frame_boundary_nothing_lost() -> None:
    async with channel_pair(channel_config(frame_delay_ms=1000)) as p:
        t = p.connect()
        assert t is not None
        p.link.inject(b"abc")
        assert t.writes == []  # waiting for its frame delay
        cfg = dataclasses.replace(p.channel.cfg, packing=PackingConfig(2, None, None))
        p.channel.reconfigure(cfg, PORT)
        assert t.writes == [b"abc"], "the pending frame goes out whole, at once"
        p.link.inject(b"defgh")
        assert t.writes == [b"abc", b"de", b"fg"]
        assert p.channel.sessions[next(iter(p.channel.sessions))].framer.pending() == 1
        assert p.session_events()[-1]["event"] == "connected"


@in_loop
async def test_a_new_slot_timeout_moves_the_open_slot_s_end() -> None:
    cfg = SLOTTED
    async with channel_pair(cfg) as p:
        slot_with_a_queue(p)
        assert p.link.take() == b"req"
        shorter = dataclasses.replace(cfg, secondary=SecondaryConfig(0, "slotted", 100))
        p.channel.reconfigure(shorter, PORT)
        arbiter = p.channel.arbiter
        assert isinstance(arbiter, SlottedArbiter) and arbiter.timeout == 0.1
        assert p.channel.next_deadline() == p.clock() + 0.1
        p.advance(0.1)
        assert p.link.take() == b"queued", "the queue survived and went out at the new T"
        assert p.counters["dropped-bytes"] == 0


@in_loop
async def test_a_new_response_mode_takes_the_sessions_and_counts_a_queue() -> None:
    cfg = SLOTTED
    async with channel_pair(cfg) as p:
        primary, secondary = slot_with_a_queue(p)
        assert p.statuses() == {"primary": "active", "secondary": "waiting"}
        raw = dataclasses.replace(cfg, secondary=SecondaryConfig(0, "raw", None))
        p.channel.reconfigure(raw, PORT)
        assert p.statuses() == {"primary": "active", "secondary": "active"}
        assert p.counters["dropped-bytes"] == len(b"queued")
        assert p.session_events()[-1] == {
            **p.session_events()[-1],
            "event": "role-change",
            "role": "secondary",
            "status": "active",
        }
        secondary.send(b"now")
        assert p.link.take() == b"reqnow"
        p.link.inject(b"both")
        assert primary.recv() == b"both" and secondary.recv() == b"both"


@in_loop
async def test_allowed_peer_closes_only_the_sessions_no_longer_allowed() -> None:
    cfg = channel_config(response_mode="raw")
    async with channel_pair(cfg) as p:
        kept, cut = p.connect(P, "10.0.0.1"), p.connect(S, "192.0.2.9")
        assert kept is not None and cut is not None
        p.channel.reconfigure(dataclasses.replace(cfg, allowed_peers=("10.0.0.0/8",)), PORT)
        await p.settle()
        assert cut.gone and not kept.gone
        assert p.counters["sessions-ended-by-commit"] == 1
        assert p.session_events()[-1]["reason"] == "allowed-peer changed"
        assert p.connect(S, "192.0.2.9") is None, "refused from now on"


@in_loop
async def test_takeover_and_the_inactivity_timeout_decide_from_now_on() -> None:
    cfg = channel_config()
    async with channel_pair(cfg) as p:
        first = p.connect()
        assert first is not None and p.connect() is None
        changed = dataclasses.replace(cfg, takeover=True, inactivity_timeout=5)
        p.channel.reconfigure(changed, PORT)
        second = p.connect()
        await p.settle()
        assert second is not None and first.gone
        p.advance(5)
        await p.settle()
        assert second.gone
        assert p.session_events()[-1]["reason"] == "inactivity timeout"
