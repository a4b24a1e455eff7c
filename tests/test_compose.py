"""compose/: the compose file as Debian's docker-compose reads it (``config``
needs no engine), the scripts of the image run for real on this machine
against a real ``nf run``, and (marked slow) the image built and run with
podman: NETCONF through the published port, bytes through the relay to a
pty on the host.

What podman needs on this machine is in ``podman_env`` and compose/README.md
(runc, not crun, on this host's hybrid cgroups; ulimits no higher than
this sandbox's hard limits)."""

from __future__ import annotations

import grp
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ncclient_connect
from relayhelpers import pty_device, read_fd, read_sock, write_fd
from test_startup import NC, NF, SOIP

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose"
COMPOSE_FILE = COMPOSE / "compose.yaml"
CONTAINERFILE = COMPOSE / "Containerfile"
VENV_BIN = str(Path(NF).parent)
DESCRIBE = (
    f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><serial-port><name>serial0</name>'
    "<description>saved</description></serial-port></serial-over-ip></config>"
)


def compose_config(**env: str) -> dict[str, Any]:
    """``docker-compose config`` of compose.yaml, parsed, with ``env`` as
    the only NF_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NF_", "COMPOSE_"))}
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=clean | env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return parsed


def containerfile_link() -> tuple[str, str]:
    """The device link the image makes: (link, target)."""
    found = re.search(r"ln -s (\S+) (\S+)", CONTAINERFILE.read_text())
    assert found
    return found.group(2), found.group(1)


# -- the compose file, as docker-compose reads it -----------------------------


def test_compose_config_has_the_services_volume_ports_healthcheck_devices() -> None:
    config = compose_config(NF_ADMIN_PASSWORD="secret")
    services = config["services"]
    assert set(services) == {"nf", "nf-sim", "client"}
    assert services["nf"]["profiles"] == ["serial"]
    assert services["nf-sim"]["profiles"] == ["sim"]
    assert "profiles" not in services["client"]
    assert "nf-state" in config["volumes"]
    for name in ("nf", "nf-sim"):
        daemon = services[name]
        assert daemon["volumes"] == ["nf-state:/var/lib/nf:rw"]
        assert set(daemon["ports"]) == {"127.0.0.1:8300:8300/tcp", "127.0.0.1:4001:4001/tcp"}
        assert daemon["healthcheck"]["test"] == ["CMD", "nf-healthcheck"]
        assert daemon["environment"]["NF_ADMIN_PASSWORD"] == "secret"
        build = daemon["build"]
        assert Path(build["context"]) == ROOT
        assert (Path(build["context"]) / build["dockerfile"]).resolve() == CONTAINERFILE
    _, target = containerfile_link()
    assert services["nf"]["devices"] == [f"/dev/ttyS0:{target}"]
    assert "devices" not in services["nf-sim"]
    assert services["nf-sim"]["environment"]["NF_SIM"] == "echo"
    assert services["nf-sim"]["networks"]["default"]["aliases"] == ["nf"]
    client = services["client"]
    assert client["entrypoint"] == ["nf-get-config"]
    assert client["environment"]["NF_HOST"] == "nf"
    assert client["image"] == services["nf"]["image"]


def test_compose_variables_choose_the_device_and_the_published_addresses() -> None:
    config = compose_config(
        NF_SERIAL_DEVICE="/dev/ttyUSB3",
        NF_NETCONF_PUBLISH="0.0.0.0:830",
        NF_CHANNEL_PUBLISH="192.0.2.1:4001",
    )
    nf = config["services"]["nf"]
    _, target = containerfile_link()
    assert nf["devices"] == [f"/dev/ttyUSB3:{target}"]
    assert set(nf["ports"]) == {"0.0.0.0:830:8300/tcp", "192.0.2.1:4001:4001/tcp"}
    # unset, the password is empty: the daemon generates one
    assert nf["environment"]["NF_ADMIN_PASSWORD"] == ""


def test_the_image_runs_as_nf_in_dialout_with_its_state_on_a_volume() -> None:
    text = CONTAINERFILE.read_text().replace("\\\n", " ")  # continuation lines joined
    assert re.search(r"useradd [^&]*--groups dialout [^&]* nf ", text)
    assert re.search(r"^USER nf$", text, re.MULTILINE)
    assert 'VOLUME ["/var/lib/nf"]' in text
    assert re.search(r'^HEALTHCHECK .* CMD \["nf-healthcheck"\]$', text, re.MULTILINE)
    for script in ("nf-entrypoint", "nf-healthcheck", "nf-get-config"):
        assert script in text
        assert os.access(COMPOSE / script, os.X_OK), script
    # the build context (the repository) sends only what the image needs
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*" and "!nf" in ignore and ".venv" not in ignore


def test_the_config_is_valid_and_names_the_device_the_image_links() -> None:
    done = subprocess.run(
        [NF, "validate", str(COMPOSE / "config.xml")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    link, _ = containerfile_link()
    assert f"<device>{link}</device>" in (COMPOSE / "config.xml").read_text()
    assert link in (COMPOSE / "nf-entrypoint").read_text()  # the simulator's link too


# -- the image's scripts, run here against a real nf run ----------------------


@contextmanager
def entrypoint(state: Path, seed: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """compose/nf-entrypoint as the container runs it, on loopback: the
    daemon it becomes, and its NETCONF port."""
    env = dict(
        os.environ,
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        NF_STATE_DIR=str(state),
        NF_CONFIG=str(seed),
        NF_LISTEN="127.0.0.1:0",
        NF_ADMIN_PASSWORD="pw",
    )
    env.pop("NF_SIM", None)
    proc = subprocess.Popen(
        [str(COMPOSE / "nf-entrypoint")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "NETCONF over SSH on" in line:
                break
        banner = lines[-1] if lines else ""
        assert "NETCONF over SSH on" in banner, "".join(lines)
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        yield proc, int(banner.split("127.0.0.1:")[1].split()[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, "".join(lines)
    assert " ERROR " not in "".join(lines), "".join(lines)


def run_script(name: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMPOSE / name)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", **env),
        check=False,
    )


def test_entrypoint_seeds_startup_once_and_the_client_and_healthcheck_work(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    seed = COMPOSE / "config.xml"
    with entrypoint(state, seed) as (_, port):
        assert (state / "startup.xml").read_bytes() == seed.read_bytes()
        health = run_script("nf-healthcheck", NF_LISTEN=f"127.0.0.1:{port}")
        assert health.returncode == 0, health.stderr
        got = run_script(
            "nf-get-config", NF_HOST="127.0.0.1", NF_PORT=str(port), NF_ADMIN_PASSWORD="pw"
        )
        assert got.returncode == 0, got.stderr
        assert "<device>/opt/nf/dev/tty0</device>" in got.stdout
        wrong = run_script(
            "nf-get-config",
            NF_HOST="127.0.0.1",
            NF_PORT=str(port),
            NF_ADMIN_PASSWORD="wrong",
            NF_CLIENT_WAIT="60",
        )
        assert wrong.returncode == 1 and "nf-get-config" in wrong.stderr  # not retried
        with ncclient_connect("127.0.0.1", port, "admin", "pw") as m:
            m.edit_config(target="running", config=DESCRIBE)
            m.copy_config(source="running", target="startup")
    # a second start keeps what was saved over NETCONF
    with (
        entrypoint(state, seed) as (_, port),
        ncclient_connect("127.0.0.1", port, "admin", "pw") as m,
    ):
        assert "<description>saved</description>" in m.get_config("running").data_xml


def test_healthcheck_fails_without_an_ssh_banner(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
        refused = run_script("nf-healthcheck", NF_LISTEN=f"127.0.0.1:{port}")
    assert refused.returncode == 1 and "NETCONF port" in refused.stderr
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def http() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=http, daemon=True).start()
        wrong = run_script("nf-healthcheck", NF_LISTEN=f"127.0.0.1:{server.getsockname()[1]}")
    assert wrong.returncode == 1 and "no SSH banner" in wrong.stderr


# -- the image, built and run with podman (slow) ------------------------------

BASE_IMAGE = "localhost/nf-test-base:bookworm"
TEST_IMAGE = "localhost/nf-serial-over-ip:test"
DEPS_IMAGE = "localhost/nf-test-deps:latest"
"""The Containerfile's ``deps`` stage (compiler, dependencies), kept between
runs like the base image: a run after a change of the code only builds the
package.  A change of pyproject.toml makes a new one; the old one, untagged,
is pruned with the build stage."""
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def podman_env(tmp: Path) -> dict[str, str]:
    """podman's environment on this machine (CONTAINERS_CONF, nothing
    changed on the machine):

    - runc: crun 1.8 refuses this host's hybrid cgroups ("cgroups in hybrid
      mode not supported, drop all controllers from cgroupv2": hugetlb is
      on the v2 hierarchy, the others on v1);
    - ulimits no higher than this process's hard limits: podman asks for
      1048576 open files and lowers its own RLIMIT_NPROC hard limit to
      32768, and the sandbox has no CAP_SYS_RESOURCE to raise either
      ("setrlimit `RLIMIT_NOFILE`/`RLIMIT_NPROC`: Operation not permitted")."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    conf = tmp / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        '[engine]\nruntime = "runc"\n'
    )
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def podman(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def podman_logs(env: dict[str, str], name: str) -> str:
    """The container's output (its stderr comes on podman's stderr)."""
    done = subprocess.run(["podman", "logs", name], capture_output=True, text=True, env=env)
    return done.stdout + done.stderr


def ensure_base_image(env: dict[str, str], tmp: Path) -> None:
    """A Debian 12 image from debootstrap (no image registry is reachable
    here), with this machine's extra CA certificates: PyPI is reached
    through a TLS proxy whose CA the build's pip must trust.  Kept in
    podman's storage between runs."""
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env).returncode == 0:
        return
    rootfs = tmp / "rootfs"
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
        check=True,
        capture_output=True,
        timeout=600,
    )
    cas = rootfs / "usr/local/share/ca-certificates"
    cas.mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, cas)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["podman", "import", "-", BASE_IMAGE],
        stdin=tar.stdout,
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert tar.wait() == 0
    shutil.rmtree(rootfs)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_image_builds_runs_and_relays(tmp_path: Path) -> None:
    compose = compose_config(NF_ADMIN_PASSWORD="pw")["services"]["nf"]
    container_port = {int(p.split(":")[-1].split("/")[0]) for p in compose["ports"]}
    assert container_port == {8300, 4001}
    volume_target = compose["volumes"][0].split(":")[1]
    health = compose["healthcheck"]["test"][1:]
    _, device = containerfile_link()
    scratch = Path(tempfile.mkdtemp(prefix="nf-podman-", dir="/var/tmp"))
    env = podman_env(scratch)
    name = f"nf-test-{uuid.uuid4().hex[:8]}"
    try:
        ensure_base_image(env, scratch)
        for target, tag in (("deps", DEPS_IMAGE), (None, TEST_IMAGE)):
            podman(
                env,
                "build",
                "--format=docker",  # keeps HEALTHCHECK (OCI images have none)
                "--layers",  # reuses the kept deps stage
                f"--build-arg=BASE={BASE_IMAGE}",
                *(["--target", target] if target else []),
                "-f",
                str(CONTAINERFILE),
                "-t",
                tag,
                str(ROOT),
                timeout=900,
            )
        with pty_device() as (master, slave):
            # a serial device as on Debian: root:dialout 0660
            os.chown(slave, 0, grp.getgrnam("dialout").gr_gid)
            os.chmod(slave, 0o660)
            # a host pty cannot go through `devices:` (opening a pts node
            # outside its devpts gives EIO): it is bind-mounted, with the
            # device cgroup rule that `devices:` would have added
            podman(
                env,
                "run",
                "-d",
                "--name",
                name,
                "-v",
                f"{name}:{volume_target}",
                "-v",
                f"{slave}:{device}",
                "--device-cgroup-rule=c 136:* rwm",
                "-p",
                "127.0.0.1::8300",
                "-p",
                "127.0.0.1::4001",
                "-e",
                "NF_ADMIN_PASSWORD=pw",
                TEST_IMAGE,
            )
            ports = {
                int(line.split("/")[0]): int(line.rsplit(":", 1)[1])
                for line in podman(env, "port", name).splitlines()
            }
            deadline = time.monotonic() + 60
            while True:
                try:
                    with ncclient_connect("127.0.0.1", ports[8300], "admin", "pw") as m:
                        running = m.get_config("running").data_xml
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise AssertionError(podman_logs(env, name)) from None
                    time.sleep(1)
            assert "<device>/opt/nf/dev/tty0</device>" in running
            assert podman(env, "exec", name, *health) == ""
            # the build stage compiled the Telnet parser's C hot path
            accelerated = "import nf.protocol.telnet as t; print(t.ACCELERATED)"
            assert podman(env, "exec", name, "python", "-c", accelerated).strip() == "True"
            who = podman(env, "exec", name, "id").split()
            assert who[0].startswith("uid=") and not who[0].startswith("uid=0(")
            assert "20(dialout)" in who[2], who
            with socket.create_connection(("127.0.0.1", ports[4001]), timeout=5) as client:
                client.sendall(b"to the serial side\n")
                assert read_fd(master, 19) == b"to the serial side\n", podman_logs(env, name)
                write_fd(master, b"back to the net\n")
                assert read_sock(client, 16) == b"back to the net\n"
            started = time.monotonic()
            podman(env, "stop", "-t", "10", name)
            stopped_in = time.monotonic() - started
            assert podman(env, "inspect", name, "--format", "{{.State.ExitCode}}").strip() == "0"
            assert stopped_in < 5, stopped_in
            assert "received SIGTERM, stopping" in podman_logs(env, name)
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=env, capture_output=True, check=False)
        for cleanup in (
            ["volume", "rm", "-f", name],
            # the base and deps images stay: debootstrap, apt and pip are the slow part
            ["rmi", "-f", TEST_IMAGE],
            ["image", "prune", "-f", "--filter", "label=nf.stage=build"],
        ):
            subprocess.run(["podman", *cleanup], env=env, capture_output=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
