"""Shared fixtures: a real daemon (SSH listener, datastores on an anyio loop,
runtime hand-off through the portal) running in this process on loopback."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import ncclient.transport.session
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from rawclient import tcp_connect

from nf.app import DEMO_CONFIG, Daemon, load_initial
from nf.boot import Listen, bind_unix
from nf.config.tree import Node
from nf.northbound.auth import User, Users
from nf.northbound.throttle import Policy
from nf.northbound.transports import Transports
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import NullRuntime, Runtime
from nf.schema import default_schema

USER = "admin"
PASSWORD = "test-password"

# ncclient's session thread sends a queued request only after its select()
# on the channel times out, every TICK (0.1 s): each RPC of the suite waited
# for it, on the client's side.  ncclient takes no parameter for it; a
# shorter tick changes no byte on the wire, only how soon the client sends.
ncclient.transport.session.TICK = 0.005


def quick_hash(password: str) -> str:
    """A password in hash_password's stored form, at scrypt's least cost.

    verify_password takes n, r and p from the stored hash, so logins to the
    suite's daemons are checked the real way, but each in microseconds
    instead of a 16 MiB scrypt (0.05-0.2 s of the daemon's CPU per SSH
    connection, over a thousand connections).  tests/test_users.py checks
    hash_password itself, at its real cost.
    """
    salt = os.urandom(16)
    n, r, p = 2, 1, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    enc = base64.b64encode
    return f"scrypt${n}${r}${p}${enc(salt).decode()}${enc(digest).decode()}"


def add_user(users: Users, name: str, password: str) -> None:
    """Give ``name`` the password (a quick_hash) in ``users`` and save it."""
    users.users[name] = User(name, quick_hash(password))
    users.save()


def ncclient_connect(  # type: ignore[no-untyped-def]
    host: str, port: int, username: str, password: str | None, **kwargs: object
):
    """An ncclient session (real SSH) over a TCP_NODELAY socket
    (rawclient.tcp_connect); ``bind_addr`` picks the source address."""
    from ncclient import manager

    timeout = cast(float, kwargs.pop("timeout", 10))
    source = cast("str | None", kwargs.pop("bind_addr", None))
    options: dict[str, object] = dict(
        host=host,
        port=port,
        username=username,
        password=password,
        hostkey_verify=False,
        allow_agent=False,
        look_for_keys=False,
        timeout=timeout,
        sock=tcp_connect(host, port, timeout, source),
    )
    options.update(kwargs)
    return manager.connect(**options)


@dataclass
class Running:
    """A started daemon and how to reach it."""

    daemon: Daemon
    portal: BlockingPortal
    host: str
    port: int
    state_dir: Path
    username: str = USER
    password: str = PASSWORD
    tls_port: int | None = None
    """NETCONF over TLS, when started with ``tls=True``."""
    subsystem: Path | None = None
    """nf-subsystem's socket, when started with ``subsystem=True``."""

    def connect(self, **kwargs: object):  # type: ignore[no-untyped-def]
        """An ncclient session (real SSH) to this daemon."""
        options: dict[str, object] = dict(username=self.username, password=self.password)
        options.update(kwargs)
        return ncclient_connect(self.host, self.port, **options)  # type: ignore[arg-type]


DaemonFactory = Callable[..., Running]


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Start daemons on 127.0.0.1 with an ephemeral port; all are stopped after the test.

    ``make_daemon(runtime=..., initial=Node | Path, login_policy=...)``: the
    runtime defaults to NullRuntime, the initial configuration to the
    embedded demo, the login throttle's policy to the daemon's.
    ``transports``: TLS settings and call home (nf.northbound.transports);
    ``tls=True`` adds a NETCONF over TLS listener on an ephemeral port.
    """
    stack: list[tuple[Running, object]] = []
    shutdowns: list[tuple[BlockingPortal, RelayRuntime]] = []
    cleanups: list[Callable[[], None]] = []

    def factory(
        runtime: Runtime | None = None,
        initial: Node | Path | None = None,
        relay: bool = False,
        login_policy: Policy | None = None,
        transports: Transports | None = None,
        tls: bool = False,
        subsystem: bool = False,
    ) -> Running:
        schema = default_schema()
        state_dir = tmp_path / f"state{len(stack)}"
        state_dir.mkdir()
        users = Users(state_dir / "users.json")
        add_user(users, USER, PASSWORD)
        tree = (
            initial if isinstance(initial, Node) else load_initial(initial or DEMO_CONFIG, schema)
        )
        cm = start_blocking_portal()
        portal = cm.__enter__()
        if relay:
            runtime = RelayRuntime()
            portal.start_task(runtime.run)
            shutdowns.append((portal, runtime))
        listener = Listen("127.0.0.1", 0).bind()
        sock_path = None
        if subsystem:  # a short path: a Unix socket's is at most 107 bytes
            short = Path(tempfile.mkdtemp(prefix="nf-"))
            cleanups.append(lambda: shutil.rmtree(short, ignore_errors=True))
            sock_path = short / "netconf.sock"
        daemon = Daemon(
            schema,
            runtime or NullRuntime(),
            users,
            state_dir,
            listener,
            login_policy=login_policy or Policy(),
            tls_listener=Listen("127.0.0.1", 0).bind() if tls else None,
            transports=transports or Transports(),
            subsystem_listener=bind_unix(sock_path) if sock_path is not None else None,
        )
        try:
            host, port = portal.call(daemon.start, portal, tree)
        except BaseException:
            daemon.close()
            cm.__exit__(None, None, None)  # type: ignore[attr-defined]
            raise
        tls_port = daemon.tls_address[1] if daemon.tls_address else None
        running = Running(
            daemon,
            portal,
            host,
            port,
            state_dir,
            tls_port=tls_port,
            subsystem=sock_path,
        )
        stack.append((running, cm))
        return running

    yield factory
    for portal, relay_runtime in shutdowns:
        portal.call(relay_runtime.shutdown)
    for running, cm in reversed(stack):
        running.daemon.close()
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]
    for cleanup in cleanups:
        cleanup()


@pytest.fixture
def daemon(make_daemon: DaemonFactory) -> Running:
    """One daemon on the demo configuration with the NullRuntime."""
    return make_daemon()


@pytest.fixture
def relay(make_daemon: DaemonFactory) -> Running:
    """One daemon with the real relay runtime and an empty configuration
    (a test module may define its own ``relay``)."""
    return make_daemon(relay=True, initial=Node())
