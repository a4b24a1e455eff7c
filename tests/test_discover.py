"""tools/discover (issue 11) against a real ``nf run`` on loopback.

What the tool fetched must be exactly the YANG the daemon runs on (yang/),
found through RFC 8525's /yang-library, or through RFC 7895's
/modules-state for a user whom NACM does not let read the former; a user
who can read neither, or may not call get-schema, and a wrong password or a
closed port, each end the tool with status 1 and a message naming the step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clienthelpers import Output, run
from conftest import add_user
from relayhelpers import config, free_port, port_xml
from test_planes import Daemon, nf_run

from nf.northbound.auth import USERS_FILE, Users

ROOT = Path(__file__).resolve().parent.parent
DISCOVER = ROOT / "tools" / "discover"
YANG = ROOT / "yang"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"

INET_TYPES_ENTRY = "/yl:yang-library/yl:module-set/yl:import-only-module[yl:name='ietf-inet-types']"

# ops may not read /yang-library, blind not the YANG library module at all,
# noschema may not call get-schema, partial does not see ietf-inet-types in
# the library (so the modules it fetches cannot compile)
RULES = f"""
<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <nacm xmlns="{NACM}">
    <groups>
      <group><name>ops</name><user-name>ops</user-name></group>
      <group><name>blind</name><user-name>blind</user-name></group>
      <group><name>noschema</name><user-name>noschema</user-name></group>
      <group><name>partial</name><user-name>partial</user-name></group>
    </groups>
    <rule-list>
      <name>ops</name><group>ops</group>
      <rule>
        <name>no-yang-library</name>
        <module-name>ietf-yang-library</module-name>
        <path xmlns:yl="{YANGLIB}">/yl:yang-library</path>
        <access-operations>read</access-operations>
        <action>deny</action>
      </rule>
    </rule-list>
    <rule-list>
      <name>blind</name><group>blind</group>
      <rule>
        <name>no-library</name>
        <module-name>ietf-yang-library</module-name>
        <access-operations>read</access-operations>
        <action>deny</action>
      </rule>
    </rule-list>
    <rule-list>
      <name>noschema</name><group>noschema</group>
      <rule>
        <name>no-get-schema</name>
        <module-name>ietf-netconf-monitoring</module-name>
        <rpc-name>get-schema</rpc-name>
        <access-operations>exec</access-operations>
        <action>deny</action>
      </rule>
    </rule-list>
    <rule-list>
      <name>partial</name><group>partial</group>
      <rule>
        <name>no-inet-types</name>
        <module-name>ietf-yang-library</module-name>
        <path xmlns:yl="{YANGLIB}">{INET_TYPES_ENTRY}</path>
        <access-operations>read</access-operations>
        <action>deny</action>
      </rule>
    </rule-list>
  </nacm>
</config>
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One ``nf run`` (admin's password "pw") with the users and rules above."""
    tmp = tmp_path_factory.mktemp("discover")
    state = tmp / "state"
    state.mkdir()
    users = Users(state / USERS_FILE)
    for name in ("ops", "blind", "noschema", "partial"):
        add_user(users, name, f"{name}-pw")
    cfg = tmp / "config.xml"
    cfg.write_text(config(port_xml("p", "loop://")))
    with nf_run(state, cfg) as running:
        with running.connect() as m:
            m.edit_config(target="running", config=RULES)
        yield running


def discover(daemon: Daemon, user: str, password: str, out: Path) -> Output:
    endpoint = f"127.0.0.1:{daemon.port}"
    return run([str(DISCOVER), endpoint, "-u", user, "-p", password, "--out", str(out)])


def assert_fetched_what_the_daemon_runs(out: Path, output: Output) -> None:
    fetched = {re.sub(r"@.*", "", p.name): p for p in out.iterdir()}
    assert sorted(fetched) == sorted(p.stem for p in YANG.glob("*.yang")), output.describe()
    for name, path in fetched.items():
        revision = re.search(r"revision\s+\"?([\d-]+)", (YANG / f"{name}.yang").read_text())
        assert revision is not None
        assert path.name == f"{name}@{revision[1]}.yang"
        assert path.read_text() == (YANG / f"{name}.yang").read_text(), name


def test_discover_reads_the_yang_library_and_fetches_every_module(
    daemon: Daemon, tmp_path: Path
) -> None:
    out = discover(daemon, "admin", "pw", tmp_path / "yang")
    assert out.returncode == 0, out.describe() + daemon.output()
    assert "15 schemas from /yang-library (RFC 8525), content-id " in out.stdout
    assert "11 implemented, 4 import-only, 0 submodules" in out.stdout
    assert re.search(r"^  nf-serial-over-ip\s+\d{4}-\d\d-\d\d\s+implement\s", out.stdout, re.M)
    assert re.search(r"^  ietf-inet-types\s+2013-07-15\s+import\s", out.stdout, re.M)
    assert "pyang: 11 implemented modules compile" in out.stdout
    assert_fetched_what_the_daemon_runs(tmp_path / "yang", out)


def test_discover_falls_back_to_modules_state(daemon: Daemon, tmp_path: Path) -> None:
    out = discover(daemon, "ops", "ops-pw", tmp_path / "yang")
    assert out.returncode == 0, out.describe() + daemon.output()
    assert "15 schemas from /modules-state (RFC 7895)" in out.stdout
    assert "11 implemented, 4 import-only, 0 submodules" in out.stdout
    assert_fetched_what_the_daemon_runs(tmp_path / "yang", out)


@pytest.mark.parametrize(
    ("user", "password", "message"),
    [
        ("admin", "wrong", "no NETCONF session with 127.0.0.1:{port} as admin: "),
        ("blind", "blind-pw", "the server offers no YANG library (RFC 8525 /yang-library nor"),
        ("noschema", "noschema-pw", "<get-schema> of ietf-datastores@2018-02-14: access-denied"),
        ("partial", "partial-pw", "pyang does not compile the fetched modules:\n"),
    ],
)
def test_discover_failures_say_which_step(
    daemon: Daemon, tmp_path: Path, user: str, password: str, message: str
) -> None:
    out = discover(daemon, user, password, tmp_path / "yang")
    assert out.returncode == 1, out.describe()
    assert out.stderr.startswith("discover: " + message.format(port=daemon.port)), out.describe()
    if user == "partial":  # pyang missed what the server did not list
        assert 'module "ietf-inet-types" not found' in out.stderr, out.describe()


def test_discover_of_a_closed_port(tmp_path: Path) -> None:
    port = free_port()
    out = run([str(DISCOVER), f"127.0.0.1:{port}", "-u", "admin", "-p", "pw"], cwd=tmp_path)
    assert out.returncode == 1, out.describe()
    assert out.stderr.startswith(f"discover: no NETCONF session with 127.0.0.1:{port} as admin")
    assert not (tmp_path / "discovered").exists()
