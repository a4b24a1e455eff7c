"""``nf sim``: simulated serial devices on a pseudo-terminal, driven through
their slave side as the daemon would use it."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from conftest import DaemonFactory
from pymodbus import FramerType
from pymodbus.client import ModbusTcpClient
from relayhelpers import (
    SOIP,
    free_port,
    port_state,
    port_xml,
    secondary_xml,
    server_xml,
    wait_for,
    wait_state,
)
from simhelpers import nf_sim, open_raw, read_fd, sim

from nf.sim import nmea
from nf.sim.frames import Pattern, encode
from nf.sim.modbus import holding_registers


def test_echo_writes_back_what_it_reads_and_stops_on_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "ttyECHO"
    with sim("echo", "--link", str(link)) as dev:
        assert dev.path.startswith("/dev/pts/")
        assert os.readlink(link) == dev.path
        with open_raw(str(link)) as fd:
            payload = bytes(range(256)) * 8  # raw: no byte is translated or swallowed
            os.write(fd, payload)
            assert read_fd(fd, len(payload)) == payload
        # the port closed and opened again (a channel restarted): still echoing
        with open_raw(dev.path) as fd:
            os.write(fd, b"again\r\n")
            assert read_fd(fd, 7) == b"again\r\n"
        status, err = dev.stop()
    assert status == 0, err
    assert not link.exists() and not link.is_symlink()


def test_echo_refuses_a_link_over_a_real_file(tmp_path: Path) -> None:
    existing = tmp_path / "file"
    existing.write_text("keep me")
    out = nf_sim("echo", "--link", str(existing))
    assert out.returncode == 1
    assert "cannot create the device link" in out.stderr
    assert existing.read_text() == "keep me"


# -- through a channel -----------------------------------------------------------------
def _channel_on(relay_factory: DaemonFactory, tmp_path: Path, device: str, extra: str) -> int:
    """A daemon relaying ``device`` on a server channel; its TCP port."""
    tcp = free_port()
    doc = tmp_path / "config.xml"
    doc.write_text(
        f'<serial-over-ip xmlns="{SOIP}">{port_xml("p", device)}'
        f"{server_xml('c', 'p', tcp, extra)}</serial-over-ip>"
    )
    running = relay_factory(relay=True, initial=doc)
    with running.connect() as m:  # not a probe connection: it could still be the
        # primary when the test's own connects, which would then be refused
        wait_for(lambda: port_state(m, "p").oper_status == "up" or None)
        wait_state(m, "c", lambda s: s.oper_status == "listening")
    return tcp


def test_traffic_through_a_channel_arrives_whole_and_in_order(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    frames = 3000  # 5 s at 60 kB/s: the checker connects well before the end
    with sim("traffic", "--rate", "60000", "--size", "100", "--count", str(frames)) as dev:
        tcp = _channel_on(make_daemon, tmp_path, dev.path, "")
        out = nf_sim("check", "--tcp", f"127.0.0.1:{tcp}", "--until-seq", str(frames - 1), "--json")
        status, err = dev.stop()
    assert status == 0, err
    assert f"{frames} frames" in err
    assert out.returncode == 0, (out.stdout, out.stderr)
    report = json.loads(out.stdout)
    assert report["last_seq"] == frames - 1
    # frames sent before the checker connected were dropped by the relay (no
    # session); from the first received on, every one came, once, in order
    assert report["frames"] == frames - report["first_seq"] >= 500
    assert report["lost"] == report["reordered"] == report["duplicated"] == 0
    assert report["crc_errors"] == report["payload_errors"] == 0
    assert report["bytes"] == report["frames"] * 100 + report["garbage_bytes"]
    assert report["clean"] is True


def test_check_reports_loss_with_a_nonzero_status(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    kept = [s for s in range(40) if s not in (10, 11, 12)]
    capture.write_bytes(b"".join(encode(s, 32, Pattern.COUNTER) for s in kept))
    out = nf_sim("check", "--device", str(capture), "--until-seq", "44")
    assert out.returncode == 1, out.stderr
    counts = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert counts["frames"] == "37"
    assert counts["lost"] == "8"  # 10-12 and 40-44, the tail the sender announced
    assert counts["clean"] == "False"


def test_check_cannot_connect(tmp_path: Path) -> None:
    out = nf_sim("check", "--tcp", f"127.0.0.1:{free_port()}")
    assert out.returncode == 2 and "cannot read 127.0.0.1:" in out.stderr


def test_nmea_sentences_at_the_rate(tmp_path: Path) -> None:
    with sim("nmea", "--rate", "10", "--lat", "-33.5", "--lon", "151.25", "--speed", "0") as dev:
        with open_raw(dev.path) as fd:
            read_fd(fd, 4096, timeout=0.2)  # whatever queued before we opened
            started = time.monotonic()
            data = read_fd(fd, 10**6, timeout=1.0)
            elapsed = time.monotonic() - started
        status, err = dev.stop()
    assert status == 0, err
    lines = data.split(b"\r\n")[1:-1]  # the first and last may be cut
    parsed = [nmea.parse(line) for line in lines]  # every checksum is right
    kinds = [fields[0] for fields in parsed]
    assert set(kinds) == {"GPGGA", "GPRMC"}
    ggas = [f for f in parsed if f[0] == "GPGGA"]
    assert 6 <= len(ggas) / elapsed <= 14  # 10 fixes per second, give or take the clock
    assert ggas[0][2:6] == ["3330.0000", "S", "15115.0000", "E"]


def test_modbus_slave_shared_by_two_masters_through_a_slotted_channel(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """Two SCADA masters (pymodbus clients, RTU framing over TCP) poll one
    RTU slave through the channel's primary and secondary ports; slotted
    arbitration keeps each response with the master that asked."""
    secondary = free_port()
    with sim("modbus", "--unit", "17", "--registers", "50") as dev:
        tcp = _channel_on(
            make_daemon, tmp_path, dev.path, secondary_xml(secondary, "slotted", timeout_ms=100)
        )
        results: dict[str, list[list[int]]] = {}
        errors: list[BaseException] = []

        def master(name: str, port: int, start: int) -> None:
            client = ModbusTcpClient("127.0.0.1", port=port, framer=FramerType.RTU, timeout=3)
            try:
                assert client.connect()
                got = []
                for i in range(10):
                    address = (start + 3 * i) % 45
                    reply = client.read_holding_registers(address, count=5, device_id=17)
                    assert not reply.isError(), reply
                    got.append([address, *reply.registers])
                results[name] = got
            except BaseException as exc:
                errors.append(exc)
            finally:
                client.close()

        threads = [
            threading.Thread(target=master, args=("primary", tcp, 0)),
            threading.Thread(target=master, args=("secondary", secondary, 20)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        status, err = dev.stop()
    assert not errors, errors
    assert status == 0, err
    for name, start in (("primary", 0), ("secondary", 20)):
        assert len(results[name]) == 10
        for i, (address, *values) in enumerate(results[name]):
            assert address == (start + 3 * i) % 45
            assert values == holding_registers(50)[address : address + 5]
