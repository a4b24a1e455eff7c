"""End to end with three third-party NETCONF clients: netconf-console2, yangcli
(Debian's yuma123 build) and Ansible's ansible.netcommon netconf modules.

Each client runs as its own process against a real daemon on loopback and
does what an operator would do with it: edit the candidate, commit, read the
result back.  What landed is checked twice: in the client's own output, and
in the daemon's running datastore through ncclient, so a client that only
believes it succeeded fails the test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from clienthelpers import Output, ansible_env, run, run_ok, system_tool, venv_tool
from conftest import Running
from lxml import etree

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"s": SOIP}


def running(daemon: Running, source: str = "running") -> etree._Element:
    """A datastore of the daemon, read over a separate ncclient session."""
    with daemon.connect() as m:
        return m.get_config(source=source).data_ele


def leaves(node: etree._Element) -> dict[str, str | None]:
    """Every leaf under a list entry, by its path from the entry: {"listen/port": "8302"}."""
    found: dict[str, str | None] = {}
    for leaf in node.iter():
        if len(leaf) == 0:
            steps = [leaf, *leaf.iterancestors()]
            path = steps[: steps.index(node)]
            found["/".join(etree.QName(e).localname for e in reversed(path))] = leaf.text
    return found


def entry(config: etree._Element, kind: str, name: str) -> dict[str, str | None]:
    """The leaves of one serial-port or channel, {} when it is absent."""
    found = config.xpath(f"//s:serial-over-ip/s:{kind}[s:name='{name}']", namespaces=NS)
    return leaves(found[0]) if found else {}


def serial_port(config: etree._Element, name: str) -> dict[str, str | None]:
    return entry(config, "serial-port", name)


# -- netconf-console2 --------------------------------------------------------


def netconf_console2(daemon: Running) -> list[str]:
    """The command line that reaches the daemon; commands follow it."""
    return [
        venv_tool("netconf-console2"),
        f"--host={daemon.host}",
        f"--port={daemon.port}",
        f"--user={daemon.username}",
        f"--password={daemon.password}",
        "--reply-timeout=20",
    ]


def test_netconf_console2_edits_the_candidate_commits_and_reads_back(
    daemon: Running, tmp_path: Path
) -> None:
    base = netconf_console2(daemon)
    edit = tmp_path / "edit.xml"
    # netconf-console2 wraps the file in <config> itself
    edit.write_text(
        f'<serial-over-ip xmlns="{SOIP}">'
        "<serial-port><name>nc2</name><device>loop://</device>"
        "<baud-rate>19200</baud-rate></serial-port></serial-over-ip>"
    )

    out = run_ok([*base, "--db=candidate", "--edit-config", str(edit), "--commit"])
    # one <ok/> for the edit-config, one for the commit
    oks = out.stdout.count(f'<ok xmlns="{NC}"/>')
    assert oks == 2, out.describe()

    out = run_ok([*base, "--get-config", "-x", "/serial-over-ip/serial-port[name='nc2']"])
    data = etree.fromstring(out.stdout.encode())
    assert data.tag == f"{{{NC}}}data", out.describe()
    names = data.xpath("//s:serial-port/s:name/text()", namespaces=NS)
    assert names == ["nc2"], out.describe()  # the filter selected that port only
    assert serial_port(data, "nc2") == {
        "name": "nc2",
        "device": "loop://",
        "baud-rate": "19200",
    }, out.describe()

    assert serial_port(running(daemon), "nc2")["baud-rate"] == "19200"


def test_netconf_console2_reports_a_refused_edit(daemon: Running, tmp_path: Path) -> None:
    """A server error reaches the operator as the client's failure, with the server's message."""
    edit = tmp_path / "edit.xml"
    edit.write_text(
        f'<serial-over-ip xmlns="{SOIP}">'
        "<serial-port><name>bad</name><device>loop://</device>"
        "<data-bits>9</data-bits></serial-port></serial-over-ip>"
    )
    out = run([*netconf_console2(daemon), "--db=candidate", "--edit-config", str(edit)])
    assert out.returncode not in (0, None), out.describe()
    assert "<error-tag>invalid-value</error-tag>" in out.stdout, out.describe()
    assert serial_port(running(daemon, "candidate"), "bad") == {}


# -- yangcli -------------------------------------------------------------------


def yangcli_batch(daemon: Running, tmp_path: Path, script: str) -> Output:
    """Run a yangcli script in batch mode; the modules come from the server by get-schema.

    yangcli's batch mode exits 0 even when an RPC fails and the script is
    cancelled, so the output is checked for RPC errors too.  yangcli finds
    its home through the password database, not $HOME: with the aliases,
    user variables and history files off it leaves only an empty ~/.yuma/tmp.
    """
    path = tmp_path / "script.ycl"
    path.write_text(script)
    out = run_ok(
        [
            system_tool("yangcli", "yangcli"),
            "--batch-mode",
            f"--run-script={path}",
            f"--server={daemon.host}",
            f"--ncport={daemon.port}",
            f"--user={daemon.username}",
            f"--password={daemon.password}",
            "--timeout=20",
            "--autoaliases=false",
            "--autouservars=false",
            "--autohistory=false",
        ],
        env={**os.environ, "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert "NETCONF session established" in out.stdout, out.describe()
    errors = [line for line in out.stdout.splitlines() if "RPC Error Reply" in line]
    assert not errors, out.describe()
    assert "canceled" not in out.stdout, out.describe()
    return out


def assert_channel_landed(daemon: Running, out: Output) -> None:
    """The channel the yangcli scripts build is in running, every leaf as sent."""
    # three edit-configs and the commit, each answered on its own
    assert out.stdout.count("RPC OK Reply") == 4, out.describe()
    config = running(daemon)
    assert serial_port(config, "ycl") == {"name": "ycl", "device": "loop://"}, out.describe()
    assert entry(config, "channel", "ycl") == {
        "name": "ycl",
        "description": "three steps",
        "serial-port": "ycl",
        "mode": "server",
        "listen/address": "127.0.0.1",
        "listen/port": "8302",
    }, out.describe()


def test_yangcli_builds_a_channel_in_three_valid_steps_and_commits(
    daemon: Running, tmp_path: Path
) -> None:
    """Each step leaves a valid candidate: the serial port first, then the
    channel with what its constraints need, then the remaining leaves."""
    out = yangcli_batch(
        daemon,
        tmp_path,
        "create /serial-over-ip/serial-port -- name=ycl device=loop://\n"
        "create /serial-over-ip/channel -- name=ycl serial-port=ycl mode=server"
        " listen/port=8302\n"
        "merge /serial-over-ip/channel[name='ycl'] -- description='three steps'"
        " listen/address=127.0.0.1\n"
        "commit\n",
    )
    assert_channel_landed(daemon, out)


def test_yangcli_builds_a_channel_before_its_serial_port_and_commits(
    daemon: Running, tmp_path: Path
) -> None:
    """RFC 7950 §8.3.3: constraints on the candidate hold at validate and
    commit, not after each edit.  The channel comes first, naming a serial
    port that does not exist yet and lacking the listen port its must needs."""
    out = yangcli_batch(
        daemon,
        tmp_path,
        "create /serial-over-ip/channel -- name=ycl serial-port=ycl mode=server\n"
        "create /serial-over-ip/serial-port -- name=ycl device=loop://\n"
        "merge /serial-over-ip/channel[name='ycl'] -- description='three steps'"
        " listen/address=127.0.0.1 listen/port=8302\n"
        "commit\n",
    )
    assert_channel_landed(daemon, out)


# -- Ansible -------------------------------------------------------------------

SERIAL_PORT_CONFIG = f"""\
<config xmlns:xc="{NC}">
  <serial-over-ip xmlns="{SOIP}">
    <serial-port><name>ans</name><device>loop://</device><baud-rate>57600</baud-rate></serial-port>
  </serial-over-ip>
</config>
"""


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


# The <config> is written as the Ansible documentation's examples write it:
# in no namespace (xmlns:xc declares a prefix it does not use).  RFC 6241 has
# it in the base namespace; the daemon takes both, as yuma123 netconfd does.
#
# The results go to a JSON file written by the last task rather than through
# the ansible.posix.json callback: netconf_rpc returns its raw reply (stdout)
# as bytes, which that callback cannot serialize (it drops the whole report);
# display: xml gives the reply as text in "output".
PLAYBOOK = f"""\
- hosts: nf
  gather_facts: false
  tasks:
    - name: configure
      ansible.netcommon.netconf_config:
        target: candidate
        commit: true
        content: |
{_indent(SERIAL_PORT_CONFIG, 10)}
      register: configure
    - name: read back
      ansible.netcommon.netconf_get:
        source: running
        filter: >-
          <serial-over-ip xmlns="{SOIP}">
          <serial-port><name>ans</name></serial-port></serial-over-ip>
        display: native
      register: read_back
    - name: validate
      ansible.netcommon.netconf_rpc:
        rpc: validate
        xmlns: {NC}
        content: <source><running/></source>
        display: xml
      register: validate
    - name: get-schema
      ansible.netcommon.netconf_rpc:
        rpc: get-schema
        xmlns: urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring
        content: <identifier>nf-serial-over-ip</identifier>
        display: xml
      register: get_schema
    - name: configure again
      ansible.netcommon.netconf_config:
        target: candidate
        commit: true
        content: |
{_indent(SERIAL_PORT_CONFIG, 10)}
      register: configure_again
    - name: report
      delegate_to: localhost
      ansible.builtin.copy:
        dest: "{{{{ playbook_dir }}}}/results.json"
        content: >-
          {{{{ {{
            "configure": configure.changed,
            "read_back": read_back.output,
            "validate": validate.output,
            "get_schema": get_schema.output,
            "configure_again": configure_again.changed,
          }} | to_json }}}}
"""


def test_ansible_netconf_modules(daemon: Running, tmp_path: Path) -> None:
    (tmp_path / "inventory.ini").write_text(
        "[nf]\n"
        f"dut ansible_host={daemon.host} ansible_port={daemon.port}\n"
        "[nf:vars]\n"
        "ansible_connection=ansible.netcommon.netconf\n"
        "ansible_network_os=default\n"
        f"ansible_user={daemon.username}\n"
        f"ansible_password={daemon.password}\n"
        f"ansible_python_interpreter={sys.executable}\n"
    )
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    out = run_ok(
        [venv_tool("ansible-playbook"), "-i", "inventory.ini", "play.yml"],
        env=ansible_env(tmp_path),
        cwd=tmp_path,
    )
    results = json.loads((tmp_path / "results.json").read_text())

    assert results["configure"] is True, out.describe()
    assert results["read_back"]["data"]["serial-over-ip"]["serial-port"] == {
        "name": "ans",
        "device": "loop://",
        "baud-rate": "57600",
    }, out.describe()
    assert "<ok/>" in results["validate"], out.describe()
    assert "module nf-serial-over-ip {" in results["get_schema"], out.describe()
    # the same content again changes nothing, and Ansible can tell
    assert results["configure_again"] is False, out.describe()

    assert serial_port(running(daemon), "ans")["baud-rate"] == "57600"
