"""Issue 13 through ``nf run`` (two planes): a live change keeps the relay
session, and the control plane keeps counting it (a data-plane crash after
it reports the session dropped); a restart ends it with a NETCONF
session-event saying why, and <get> tells last-restart-reason."""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from pathlib import Path

from relayhelpers import (
    config,
    connect,
    exchange,
    free_port,
    is_closed,
    pty_device,
    server_xml,
    wait_for,
)
from test_planes import _processes, _relay_config, nf_run
from test_startup import SOIP


def test_live_and_restart_commits_through_two_planes(tmp_path: Path) -> None:
    tcp = free_port()
    with ExitStack() as stack:
        master, device = stack.enter_context(pty_device())
        daemon = stack.enter_context(
            nf_run(tmp_path / "state", _relay_config(tmp_path, device, tcp))
        )
        m = stack.enter_context(daemon.connect())
        m.create_subscription()
        client = stack.enter_context(connect(tcp))
        exchange(client, master, b"ping", b"pong")

        def notes() -> list[str]:
            out = []
            while (note := m.take_notification(block=True, timeout=0.5)) is not None:
                out.append(note.notification_xml)
            return out

        assert any("<event>connected</event>" in n for n in notes()), daemon.output()

        # live: the session stays, no session-event
        m.edit_config(
            target="running", config=config(server_xml("c", "p", tcp, "<keepalive>17</keepalive>"))
        )
        exchange(client, master, b"still", b"here")
        assert not [n for n in notes() if "session-event" in n]

        # restart: the session ends, with the reason
        moved = free_port()
        m.edit_config(target="running", config=config(server_xml("c", "p", moved)))
        assert is_closed(client), daemon.output()
        events = [n for n in notes() if "<event>disconnected</event>" in n]
        assert len(events) == 1, events
        assert "<reason>configuration changed: listen/port</reason>" in events[0]
        state = m.get(filter=("subtree", f'<serial-over-ip xmlns="{SOIP}"/>')).data_xml
        assert (
            "<last-restart-reason>configuration changed: listen/port</last-restart-reason>" in state
        )
        assert "<sessions-ended-by-commit>1</sessions-ended-by-commit>" in state

        # a session on the restarted channel, a live change, then a crash of
        # the data plane: the control plane still knew of the session
        fresh = stack.enter_context(connect(moved))
        exchange(fresh, master, b"again", b"back")
        m.edit_config(
            target="running",
            config=config(
                server_xml("c", "p", moved, "<inactivity-timeout>600</inactivity-timeout>")
            ),
        )
        exchange(fresh, master, b"live", b"kept")
        os.kill(daemon.planes()["data"], signal.SIGKILL)
        wait_for(lambda: _processes(m)["data-plane-restarts"] == "1", timeout=10)
        assert _processes(m)["relay-sessions-dropped"] == "1", daemon.output()
