"""compose/ansible against a lab of three hosts (issue 11): Ansible's
netconf_config, netconf_get and netconf_rpc run from the orchestrator's
namespace (ansible-playbook there, as an orchestrator box would) on the
inventory that ``compose/lab up`` writes.

The recap must count exactly what the playbooks should do on each host,
the second configure must be ``ok`` where the first was ``changed``, and
what landed is checked again outside Ansible: over NETCONF (the channel
listens, with the description of before the confirmed commit, which the
daemon's log says the timer rolled back) and through the relay itself (a
TCP client in the orchestrator gets its bytes back from the host's
simulated serial device).
"""

from __future__ import annotations

import re

import pytest
from clienthelpers import ansible_env, run
from labhelpers import LAB, ROOT, Lab, lab, needs_root

__all__ = ["lab"]  # the fixture

pytestmark = [needs_root, pytest.mark.slow, pytest.mark.timeout(300)]

HOSTS = {"h1": "198.18.0.11", "h2": "198.18.0.12", "h3": "198.18.0.13"}

# Runs in the orchestrator's namespace: each host's channel (TCP 4001)
# echoes what it is sent, through the daemon and the host's pty device.
ECHO_PROBE = """
import socket, sys
for address in sys.argv[1:]:
    with socket.create_connection((address, 4001), timeout=10) as s:
        s.settimeout(10)
        message = f"hello {address}\\n".encode()
        s.sendall(message)
        got = b""
        while len(got) < len(message):
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        print(address, got == message)
"""

RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", re.M)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP: {host: {"ok": 10, "changed": 2, ...}}."""
    tail = stdout[stdout.rindex("PLAY RECAP") :]
    return {
        m[1]: {k: int(v) for k, v in (kv.split("=") for kv in m[2].split())}
        for m in RECAP.finditer(tail)
    }


def task_results(stdout: str, task: str) -> list[dict[str, str]]:
    """Each run of the task named ``task``: {host: "ok" | "changed" | ...}."""
    runs = []
    for block in stdout.split("TASK [")[1:]:
        if block.startswith(task + "]"):
            runs.append({m[2]: m[1] for m in re.finditer(r"^(\w+): \[(\w+)\]", block, re.M)})
    return runs


def test_site_playbook_configures_reads_back_is_idempotent_and_rolls_back(
    lab: Lab, tmp_path
) -> None:
    lab.lab_ok("up", "3", "--timeout", "60")
    env = ansible_env(tmp_path)
    # the inventory alone must turn host key checking off
    del env["ANSIBLE_HOST_KEY_CHECKING"]
    env.update(NF_LAB_ID=lab.id, NF_LAB_DIR=str(lab.dir))
    out = run(
        [str(LAB), "exec", "orchestrator", "--", "ansible-playbook",
         "-i", str(lab.dir / "inventory.ini"), "compose/ansible/site.yml"],
        env=env, cwd=ROOT, timeout=240,
    )  # fmt: skip
    why = out.describe() + lab.logs()
    assert out.returncode == 0, why

    # (a) changed every host, (c) the same again changed none
    assert task_results(out.stdout, "Relay the serial port on TCP 4001") == [
        dict.fromkeys(HOSTS, "changed"),
        dict.fromkeys(HOSTS, "ok"),
    ], why
    # 10 tasks a host; changed: the first configure and the confirmed commit
    expected = dict(ok=10, changed=2, unreachable=0, failed=0, skipped=0, rescued=0, ignored=0)
    assert recap(out.stdout) == dict.fromkeys(HOSTS, expected), why

    # outside Ansible: the channel listens with the description of before
    # the confirmed commit, and the timer (not the session's end) undid it
    view = lab.netconf_view([f"{address}:830" for address in HOSTS.values()])
    for address in HOSTS.values():
        assert view[f"{address}:830"]["channels"] == {
            "lab": {"description": "relayed by the lab", "oper-status": "listening"}
        }, why
    for name in HOSTS:
        log = (lab.dir / name / "nf.log").read_text()
        assert log.count("confirmed commit rolled back: confirm-timeout expired") == 1, why

    # the relay works across the lab's network
    echo = lab.in_orchestrator("python", "-c", ECHO_PROBE, *HOSTS.values())
    assert echo.stdout.split() == [w for a in HOSTS.values() for w in (a, "True")], (
        echo.describe() + lab.logs()
    )
