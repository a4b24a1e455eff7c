"""compose/lab (issue 11): a fleet of real ``nf run`` daemons, each in a
network namespace of its own, reached from an orchestrator namespace.

``up`` must change nothing of the root namespace, give every host an
address that exists only inside the lab and no route out, and return only
once every daemon serves NETCONF; ``down`` must leave no namespace, link or
process behind, after a good ``up`` and after one that failed half way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest
from labhelpers import Lab, lab, needs_root, root_links
from relayhelpers import wait_for

__all__ = ["lab"]  # the fixture

pytestmark = [needs_root, pytest.mark.slow, pytest.mark.timeout(180)]

LINK_ROUTE = "proto kernel scope link src"

HOSTS = {"h1": "198.18.0.11:830", "h2": "198.18.0.12:830", "h3": "198.18.0.13:830"}


def test_up_three_hosts_answer_netconf_from_the_orchestrator_and_down_leaves_nothing(
    lab: Lab,
) -> None:
    links_before = root_links()
    up = lab.lab_ok("up", "3", "--timeout", "60")

    rows = re.finditer(r"^(h\d)\s+(\S+)\s+(\S+)\s+(\S+)", up.stdout, re.M)
    table = {m[1]: m.groups()[1:] for m in rows}
    assert table == {
        name: (f"{lab.prefix}{name}", endpoint.split(":")[0], endpoint)
        for name, endpoint in HOSTS.items()
    }, up.describe()
    assert (lab.dir / "inventory.ini").read_text().count("ansible_host=198.18.0.1") == 3
    # nothing of the root namespace changed: the links live in the lab's namespaces
    assert_root_namespace_untouched(lab, links_before)

    # every host serves NETCONF, on its own simulated device, to the orchestrator
    view = lab.netconf_view(list(HOSTS.values()))
    for name, endpoint in HOSTS.items():
        assert view[endpoint]["devices"] == [str(lab.dir / name / "ttyS0")], lab.logs()

    # the hosts have no route out: the lab's addresses exist only inside it
    for name, endpoint in HOSTS.items():
        routes = ip("-n", f"{lab.prefix}{name}", "route")
        address = endpoint.split(":")[0]
        assert routes.stdout.split() == f"198.18.0.0/24 dev eth0 {LINK_ROUTE} {address}".split()
    unreachable = ip("-n", f"{lab.prefix}orch", "route", "get", "203.0.113.1")
    assert unreachable.returncode != 0
    assert "unreachable" in unreachable.stderr.lower(), unreachable.stderr

    status = lab.lab_ok("status")
    for name, endpoint in HOSTS.items():
        assert re.search(rf"^{name}\s.*{re.escape(endpoint)}\s+\d+\s+answers$", status.stdout, re.M)

    # a daemon that dies shows as stopped; the others still answer
    h3 = next(p for p in lab.state()["processes"] if p["role"] == "h3 nf")  # type: ignore[attr-defined]
    os.kill(h3["pid"], signal.SIGKILL)
    wait_for(lambda: re.search(r"^h3\s.*\sstopped$", lab.lab_ok("status").stdout, re.M), 20)
    status = lab.lab_ok("status")
    assert re.search(r"^h1\s.*\sanswers$", status.stdout, re.M), status.describe()

    down = lab.lab_ok("down")
    assert "removed 5 namespaces" in down.stdout, down.describe()
    assert lab.leftovers() == []
    assert_root_namespace_untouched(lab, links_before)
    assert not (lab.dir / "lab.json").exists()
    # idempotent
    assert "removed 0 namespaces" in lab.lab_ok("down").stdout
    assert lab.lab("status").returncode == 1


def test_down_after_a_failed_up_leaves_nothing(lab: Lab) -> None:
    # h2 cannot start: its state directory is a file
    (lab.dir / "h2").mkdir(parents=True)
    (lab.dir / "h2" / "state").write_text("not a directory")

    up = lab.lab("up", "3", "--timeout", "60")
    assert up.returncode == 1, up.describe() + lab.logs()
    assert "h2: nf run stopped" in up.stderr, up.describe()
    assert "state" in up.stderr and "compose/lab down" in up.stderr, up.describe()
    assert lab.leftovers() != []  # a partial lab: namespaces, devices, other daemons
    # a second up refuses to start over the remains
    again = lab.lab("up", "3")
    assert again.returncode == 1 and "run compose/lab down first" in again.stderr

    lab.lab_ok("down")
    assert lab.leftovers() == []


def test_down_finds_a_lab_whose_state_file_is_lost(lab: Lab) -> None:
    lab.lab_ok("up", "1", "--timeout", "60")
    (lab.dir / "lab.json").unlink()

    down = lab.lab_ok("down")
    assert "removed 3 namespaces" in down.stdout, down.describe()
    assert lab.leftovers() == []


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def assert_root_namespace_untouched(lab: Lab, links_before: set[str]) -> None:
    """No link of the root namespace is the lab's: none with a peer in its
    namespaces (``ip link`` names them), none new with a name the lab uses
    (other tests may add links of their own meanwhile)."""
    assert [found for found in lab.leftovers() if found.startswith("link ")] == []
    added = root_links() - links_before
    assert not {name for name in added if re.fullmatch(r"br0|orch|eth0|h\d+", name)}, added
