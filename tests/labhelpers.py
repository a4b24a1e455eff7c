"""Driving ``compose/lab`` from tests: a lab of a unique id in tmp_path.

Each test's lab has an id of its own (``NF_LAB_ID``), so its namespaces
(``nflab-ID-...``) never meet those of a lab a developer has up or of a
test running beside it, and a directory of its own (``NF_LAB_DIR``).  The
fixture always runs ``down`` at the end, and every assertion message built
here carries the hosts' logs.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clienthelpers import Output, run

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "compose" / "lab"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces (ip netns) need root; CI runs as root"
)

# Runs in the orchestrator's namespace (compose/lab exec): for each endpoint
# argument, a NETCONF session's view of the host as JSON.
NETCONF_PROBE = """
import json, os, sys
from ncclient import manager
from lxml import etree
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
found = {}
for endpoint in sys.argv[1:]:
    host, port = endpoint.rsplit(":", 1)
    with manager.connect(host=host, port=int(port), username="admin",
                         password=os.environ["NF_LAB_PASSWORD"], hostkey_verify=False,
                         look_for_keys=False, allow_agent=False, timeout=20) as m:
        data = m.get().data_ele
    leaf = lambda path: data.xpath(path, namespaces={"s": SOIP})
    found[endpoint] = {
        "devices": leaf("//s:serial-port/s:device/text()"),
        "channels": {
            c.findtext(f"{{{SOIP}}}name"): {
                "description": c.findtext(f"{{{SOIP}}}description"),
                "oper-status": c.findtext(f"{{{SOIP}}}state/{{{SOIP}}}oper-status"),
            }
            for c in leaf("//s:channel")
        },
    }
print(json.dumps(found))
"""


@dataclass
class Lab:
    """One lab: its id, directory and environment for ``compose/lab``."""

    id: str
    dir: Path
    env: dict[str, str]

    @property
    def prefix(self) -> str:
        return f"nflab-{self.id}-"

    def lab(self, *args: str, timeout: float = 120.0) -> Output:
        return run([str(LAB), *args], env=self.env, cwd=ROOT, timeout=timeout)

    def lab_ok(self, *args: str, timeout: float = 120.0) -> Output:
        out = self.lab(*args, timeout=timeout)
        assert out.returncode == 0, out.describe() + self.logs()
        return out

    def state(self) -> dict[str, object]:
        result: dict[str, object] = json.loads((self.dir / "lab.json").read_text())
        return result

    def password(self) -> str:
        return str(self.state()["password"])

    def in_orchestrator(self, *argv: str, timeout: float = 60.0) -> Output:
        env = dict(self.env, NF_LAB_PASSWORD=self.password())
        return run([str(LAB), "exec", "orchestrator", "--", *argv], env=env, cwd=ROOT,
                   timeout=timeout)  # fmt: skip

    def netconf_view(self, endpoints: list[str]) -> dict[str, dict[str, object]]:
        """What NETCONF shows of each host, from the orchestrator."""
        out = self.in_orchestrator("python", "-c", NETCONF_PROBE, *endpoints)
        assert out.returncode == 0, out.describe() + self.logs()
        result: dict[str, dict[str, object]] = json.loads(out.stdout)
        return result

    def logs(self) -> str:
        """Every host's daemon log, for assertion messages."""
        parts = []
        for log in sorted(self.dir.glob("h*/nf.log")):
            parts.append(f"\n--- {log}\n{log.read_text(errors='replace')[-6000:]}")
        return "".join(parts)

    def leftovers(self) -> list[str]:
        """Namespaces, root-namespace links and live processes of this lab."""
        found = [f"netns {name}" for name in _lines(["ip", "netns", "list"]) if self.prefix in name]
        found += [f"link {line}" for line in _lines(["ip", "-o", "link"]) if self.prefix in line]
        for pid, cmdline in processes():
            if str(self.dir) in cmdline or self.prefix in cmdline:
                found.append(f"process {pid}: {cmdline}")
        return found


def _lines(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


def root_links() -> set[str]:
    """The links of the root namespace, by name."""
    return {line.split(":")[1].strip().split("@")[0] for line in _lines(["ip", "-o", "link"])}


def processes() -> list[tuple[int, str]]:
    """Every live process (not zombies) and its command line."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(proc.name), cmdline))
    return found


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A lab id and directory of this test's own; ``down`` at the end, which
    must succeed and leave nothing."""
    lab_id = "t" + secrets.token_hex(5)
    lab_dir = tmp_path / "lab"
    env = dict(os.environ, NF_LAB_ID=lab_id, NF_LAB_DIR=str(lab_dir))
    the_lab = Lab(lab_id, lab_dir, env)
    yield the_lab
    out = the_lab.lab("down")
    assert out.returncode == 0, out.describe() + the_lab.logs()
    assert the_lab.leftovers() == [], the_lab.logs()
