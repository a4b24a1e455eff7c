"""``nf import ser2net``: ser2net 4.x YAML and 3.x ser2net.conf files, written
here in the shapes ser2net's documentation shows, turned into our
configuration; what does not map is named with its line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from nf.cli import document_errors, main
from nf.importers.cli import EXIT_PARTIAL

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NS = {"s": SOIP}


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def run(
    tmp_path: Path, name: str, text: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, Any, list[str]]:
    """Import ``text`` saved as ``name``: exit status, the XML printed (parsed,
    and checked valid by nf validate's validator), and the stderr lines."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    status = main(["import", "ser2net", str(path)])
    out, err = capsys.readouterr()
    root = None
    if out:
        assert document_errors(out) == [], out
        root = etree.fromstring(out.encode())
        (tmp_path / "out.xml").write_text(out)
        assert main(["validate", "-q", str(tmp_path / "out.xml")]) == 0
    lines = [line.removeprefix(f"{path}:") for line in err.splitlines()]
    return status, root, lines


def assert_notes(err: list[str], text: str, expected: list[tuple[str, str]]) -> None:
    """``err`` is one note per (needle, words), in order: on the line of
    the source containing needle, saying words."""
    assert len(err) == len(expected), err
    for (needle, words), line in zip(expected, err, strict=True):
        prefix = f"{line_of(text, needle)}:"
        assert line.startswith(prefix) and words in line, (prefix, words, line)


def leaves(root: Any, kind: str, name: str) -> dict[str, str]:
    (node,) = root.xpath(f"s:{kind}[s:name='{name}']", namespaces=NS)
    out = {}
    for leaf in node.iter():
        if len(leaf) == 0 and leaf is not node:
            path = [etree.QName(leaf).localname]
            parent = leaf.getparent()
            while parent is not node:
                path.insert(0, etree.QName(parent).localname)
                parent = parent.getparent()
            out["/".join(path)] = leaf.text
    return out


def names(root: Any, kind: str) -> list[str]:
    return [str(n) for n in root.xpath(f"s:{kind}/s:name/text()", namespaces=NS)]


DEBIAN_STYLE = """
%YAML 1.1
---
# two ports, each offered at two speeds on two TCP ports (as Debian ships it)
define: &banner \\r\\nport \\p on \\d\\r\\n

connection: &s0slow
    accepter: tcp,localhost,2000
    enable: on
    options:
      banner: *banner
      kickolduser: true
      telnet-brk-on-sync: true
    connector: serialdev,
              /dev/ttyS0,
              9600n81,local

connection: &s1slow
    accepter: tcp,localhost,2001
    enable: on
    options:
      kickolduser: true
    connector: serialdev,
              /dev/ttyS1,
              9600n81,local

connection: &s0fast
    accepter: tcp,localhost,3000
    connector: serialdev,/dev/ttyS0,19200n81,local
"""


def test_yaml_in_the_distribution_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, root, err = run(tmp_path, "ser2net.yaml", DEBIAN_STYLE, capsys)
    text = textwrap.dedent(DEBIAN_STYLE).lstrip("\n")
    assert status == EXIT_PARTIAL
    assert names(root, "serial-port") == ["ttyS0", "ttyS1"]
    assert names(root, "channel") == ["s0slow", "s1slow"]
    port = leaves(root, "serial-port", "ttyS0")
    assert port["device"] == "/dev/ttyS0"
    assert (port["baud-rate"], port["data-bits"], port["parity"], port["stop-bits"]) == (
        "9600",
        "8",
        "none",
        "1",
    )
    assert "flow-control" not in port
    channel = leaves(root, "channel", "s0slow")
    assert channel["serial-port"] == "ttyS0" and channel["mode"] == "server"
    assert (channel["listen/address"], channel["listen/port"]) == ("127.0.0.1", "2000")
    assert channel["takeover"] == "true"
    assert channel["description"] == f"imported from ser2net.yaml:{line_of(text, '&s0slow')}"
    assert err == [
        f"{line_of(text, 'banner: *banner')}: option banner: no banner is sent to clients; ignored",
        f"{line_of(text, 'telnet-brk-on-sync')}: option telnet-brk-on-sync: "
        "a Telnet sync is not turned into a break; ignored",
        f"{line_of(text, '&s0fast')}: /dev/ttyS0 is already relayed by the connection of line "
        f"{line_of(text, '&s0slow')}; a serial port has one channel: connection skipped",
    ]


EXACT = """
default:
  name: speed
  value: 115200n82

connection: &plc
  accepter: tcp,4001
  timeout: 600
  enable: off
  connector: >-
    serialdev,
    /dev/ttyUSB0,
    19200e71,rtscts
  options:
    kickolduser: true
    max-connections: 1
    remaddr: ipv4,192.0.2.10,0;2001:db8::7
    chardelay: false

connection: &meter
  accepter: tcp,::1,4002
  connector: serialdev,/dev/serial/by-id/usb-FTDI_meter-if00-port0,xonxoff
"""


def test_yaml_that_maps_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, root, err = run(tmp_path, "plant.yml", EXACT, capsys)
    assert (status, err) == (0, [])
    usb = leaves(root, "serial-port", "ttyUSB0")
    assert (usb["baud-rate"], usb["data-bits"], usb["parity"], usb["stop-bits"]) == (
        "19200",
        "7",
        "even",
        "1",
    )
    assert usb["flow-control"] == "rts-cts"
    plc = leaves(root, "channel", "plc")
    assert plc["enabled"] == "false" and plc["inactivity-timeout"] == "600"
    assert plc["listen/address"] == "0.0.0.0" and plc["listen/port"] == "4001"
    assert plc["takeover"] == "true"
    peers = root.xpath("s:channel[s:name='plc']/s:allowed-peer/text()", namespaces=NS)
    assert peers == ["192.0.2.10/32", "2001:db8::7/128"]
    meter = leaves(root, "serial-port", "usb-FTDI_meter-if00-port0")
    # the default speed (115200n82) where the connector gives none
    assert (meter["baud-rate"], meter["stop-bits"], meter["flow-control"]) == (
        "115200",
        "2",
        "xon-xoff",
    )
    assert leaves(root, "channel", "meter")["listen/address"] == "::1"


UNMAPPABLE = """
define: &base /dev/serial/by-path/pci-0000:00:1d.0
connection: &console
  accepter: telnet(rfc2217),tcp,2002
  connector: serialdev,*(base)-port0,9600e71 local=false
  options:
    max-connections: 3
    remaddr: ipv4,192.0.2.1,4000;!tcp,192.0.2.9,3000
connection: &datagrams
  accepter: udp,2003
  connector: serialdev,/dev/ttyS2
connection: &secure
  accepter: certauth,ssl,sctp,2004
  connector: serialdev,/dev/ttyS3
connection: &bmc
  accepter: tcp,2005
  connector: ipmisol,lan -U admin bmc.example,9600
connection: &remote
  accepter: tcp,2006
  connector: telnet(rfc2217),tcp,198.51.100.4,7001
connection: &clash
  accepter: tcp,2002
  connector: serialdev,/dev/ttyS4
rotator: &rot
  accepter: tcp,2020
  connections: [ *console ]
"""


def test_yaml_whose_unmappable_parts_are_named_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, root, err = run(tmp_path, "lab.yaml", UNMAPPABLE, capsys)
    text = textwrap.dedent(UNMAPPABLE).lstrip("\n")
    assert status == EXIT_PARTIAL
    assert names(root, "channel") == ["console", "remote"]
    console = leaves(root, "serial-port", "pci-0000-00-1d.0-port0")
    assert console["device"] == "/dev/serial/by-path/pci-0000:00:1d.0-port0"  # *(base) expanded
    assert (console["baud-rate"], console["data-bits"], console["parity"]) == ("9600", "7", "even")
    remote = leaves(root, "serial-port", "198.51.100.4-7001")
    assert remote["device"] == "rfc2217://198.51.100.4:7001"  # pyserial's RFC 2217 client
    peers = root.xpath("s:channel[s:name='console']/s:allowed-peer/text()", namespaces=NS)
    assert peers == ["192.0.2.1/32"]
    assert leaves(root, "channel", "console")["rfc2217"] == "true"  # telnet(rfc2217)
    assert "allow-line-control" not in leaves(root, "channel", "console")  # default true
    assert "rfc2217" not in leaves(root, "channel", "remote")

    expected = [
        ("local=false", "local=false: modem control lines (DCD) are not watched"),
        ("max-connections", "max-connections 3: a server channel has one session"),
        ("remaddr", "remaddr ipv4,192.0.2.1,4000: the remote port is not checked"),
        ("remaddr", "remaddr !tcp,192.0.2.9,3000: connect-back is not supported"),
        ("udp,2003", "udp accepter: ser2net answers the last sender"),
        ("certauth", "certauth accepter: not supported; connection skipped"),
        ("ipmisol", "ipmisol connector: not supported; connection skipped"),
        ("&clash", "TCP port 2002 is already used by the connection of line 2"),
        ("rotator", "rotator: rotator not supported; skipped"),
    ]
    assert_notes(err, text, expected)


CONF = """
# ser2net 3.x
BANNER:banner1:this is ser2net TCP port \\p device \\d\\r\\n

2000:telnet:600:/dev/ttyS0:9600 NONE 1STOPBIT 8DATABITS banner1
2001:raw:0:/dev/ttyS1:115200 EVEN 2STOPBITS 7DATABITS RTSCTS kickolduser \\
  -chardelay
127.0.0.1,2002:off:0:/dev/ttyUSB0:38400 XONXOFF
2003:rawlp:0:/dev/lp0:
CONTROLPORT:localhost,2010
2004:raw:0:/dev/ttyS3:9600 remctl hexdump
this is not a line
2005:raw:0:sol.bmc.example:9600
"""


def test_ser2net_conf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, root, err = run(tmp_path, "ser2net.conf", CONF, capsys)
    text = textwrap.dedent(CONF).lstrip("\n")
    assert status == EXIT_PARTIAL
    assert names(root, "channel") == [f"port-{p}" for p in range(2000, 2005)]
    s0 = leaves(root, "serial-port", "ttyS0")
    assert (s0["baud-rate"], s0["parity"], s0["stop-bits"], s0["data-bits"]) == (
        "9600",
        "none",
        "1",
        "8",
    )
    assert leaves(root, "channel", "port-2000")["inactivity-timeout"] == "600"
    telnet = leaves(root, "channel", "port-2000")
    assert (telnet["rfc2217"], telnet["allow-line-control"]) == ("true", "false")
    s1 = leaves(root, "serial-port", "ttyS1")  # continued on the next line
    assert (s1["baud-rate"], s1["parity"], s1["stop-bits"], s1["data-bits"]) == (
        "115200",
        "even",
        "2",
        "7",
    )
    assert s1["flow-control"] == "rts-cts"
    assert leaves(root, "channel", "port-2001")["takeover"] == "true"
    usb = leaves(root, "channel", "port-2002")
    assert usb["enabled"] == "false" and usb["listen/address"] == "127.0.0.1"
    assert leaves(root, "serial-port", "ttyUSB0")["flow-control"] == "xon-xoff"

    expected = [
        ("2000:telnet", "telnet: mapped to rfc2217 with allow-line-control false"),
        ("2000:telnet", "banner banner1: not supported; ignored"),
        ("2003:rawlp", "rawlp: mapped to raw"),
        ("CONTROLPORT", "CONTROLPORT: not supported; skipped"),
        ("remctl", "remctl: RFC 2217 needs the telnet state; ignored"),
        ("remctl", "option hexdump: not supported; ignored"),
        ("this is not", "not a ser2net.conf line"),
        ("sol.bmc", "device sol.bmc.example: only serial devices are supported; skipped"),
    ]
    assert_notes(err, text, expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "connection: &a\n  accepter: [tcp\n", "line 3: not YAML"),
        ("empty.yaml", "define: &x 1\n", "no connection could be imported"),
        ("list.yaml", "- a\n- b\n", "a ser2net file is a mapping"),
        ("nothing.conf", "# only a comment\n", "no connection could be imported"),
    ],
)
def test_unusable_input_is_refused_with_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["import", "ser2net", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and message in err, err


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "ser2net", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_format_is_told_by_content_when_the_name_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, root, _ = run(tmp_path, "ser2net.cfg", "3000:raw:0:/dev/ttyS0:9600\n", capsys)
    assert status == 0 and names(root, "channel") == ["port-3000"]
    status, root, _ = run(
        tmp_path,
        "config",
        "connection: &x\n  accepter: tcp,3001\n  connector: serialdev,/dev/ttyS0\n",
        capsys,
    )
    assert status == 0 and names(root, "channel") == ["x"]


def test_telnet_maps_to_rfc2217(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """telnet(rfc2217) and 3.x telnet with remctl: rfc2217 with line control;
    plain telnet: rfc2217 whose changes are refused, said on stderr."""
    yaml = (
        "connection: &vcom\n  accepter: telnet(rfc2217),tcp,3001\n"
        "  connector: serialdev,/dev/ttyS1,9600n81\n"
        "connection: &term\n  accepter: telnet,tcp,3002\n  connector: serialdev,/dev/ttyS2\n"
    )
    status, root, err = run(tmp_path, "t.yaml", yaml, capsys)
    assert status == EXIT_PARTIAL  # the plain telnet is approximated
    assert leaves(root, "channel", "vcom")["rfc2217"] == "true"
    assert "allow-line-control" not in leaves(root, "channel", "vcom")
    term = leaves(root, "channel", "term")
    assert (term["rfc2217"], term["allow-line-control"]) == ("true", "false")
    assert any("telnet accepter: mapped to rfc2217 with allow-line-control false" in e for e in err)
    status, root, _ = run(tmp_path, "t.conf", "3003:telnet:0:/dev/ttyS3:9600 remctl\n", capsys)
    assert status == 0
    vcom = leaves(root, "channel", "port-3003")
    assert vcom["rfc2217"] == "true" and "allow-line-control" not in vcom
