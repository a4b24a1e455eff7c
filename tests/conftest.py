"""Shared fixtures: a real daemon (SSH listener, datastores on an anyio loop,
runtime hand-off through the portal) running in this process on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from nf.app import DEMO_CONFIG, Daemon, load_initial
from nf.boot import Listen
from nf.config.tree import Node
from nf.northbound.auth import Users
from nf.northbound.throttle import Policy
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import NullRuntime, Runtime
from nf.schema import default_schema

USER = "admin"
PASSWORD = "test-password"


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

    def connect(self, **kwargs: object):  # type: ignore[no-untyped-def]
        """An ncclient session (real SSH) to this daemon."""
        from ncclient import manager

        options: dict[str, object] = dict(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            hostkey_verify=False,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        options.update(kwargs)
        return manager.connect(**options)


DaemonFactory = Callable[..., Running]


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Start daemons on 127.0.0.1 with an ephemeral port; all are stopped after the test.

    ``make_daemon(runtime=..., initial=Node | Path, login_policy=...)``: the
    runtime defaults to NullRuntime, the initial configuration to the
    embedded demo, the login throttle's policy to the daemon's.
    """
    stack: list[tuple[Running, object]] = []
    shutdowns: list[tuple[BlockingPortal, RelayRuntime]] = []

    def factory(
        runtime: Runtime | None = None,
        initial: Node | Path | None = None,
        relay: bool = False,
        login_policy: Policy | None = None,
    ) -> Running:
        schema = default_schema()
        state_dir = tmp_path / f"state{len(stack)}"
        state_dir.mkdir()
        users = Users(state_dir / "users.json")
        users.set_password(USER, PASSWORD)
        users.save()
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
        daemon = Daemon(
            schema,
            runtime or NullRuntime(),
            users,
            state_dir,
            listener,
            login_policy=login_policy or Policy(),
        )
        host, port = portal.call(daemon.start, portal, tree)
        running = Running(daemon, portal, host, port, state_dir)
        stack.append((running, cm))
        return running

    yield factory
    for portal, relay_runtime in shutdowns:
        portal.call(relay_runtime.shutdown)
    for running, cm in reversed(stack):
        running.daemon.close()
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture
def daemon(make_daemon: DaemonFactory) -> Running:
    """One daemon on the demo configuration with the NullRuntime."""
    return make_daemon()
