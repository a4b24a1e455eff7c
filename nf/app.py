"""Composition root: the event loop, the portal, the datastores and the NETCONF threads.

The relay runtime and the datastores live on one anyio event loop.  The
NETCONF server runs its sessions in threads; the only bridge between the two
is an anyio BlockingPortal, so nothing in a NETCONF thread touches runtime
objects directly.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.from_thread import BlockingPortal

from nf import __version__
from nf.config import load_document
from nf.config.tree import Node, merge
from nf.northbound import monitoring, yanglib
from nf.northbound.auth import USERS_FILE, Users, ensure_admin, load_host_key, release_heap
from nf.northbound.datastores import Datastores
from nf.northbound.defaults import CAPABILITY as WITH_DEFAULTS_CAPABILITY
from nf.northbound.rpcs import Context
from nf.northbound.server import BASE_10, BASE_11, Listen, NetconfServer
from nf.northbound.startup import StartupFile
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import Runtime
from nf.schema import SchemaIndex, default_schema

log = logging.getLogger("nf")

DEMO_CONFIG = Path(__file__).resolve().parent / "data" / "demo.xml"
STARTUP_FILE = "startup.xml"


def capabilities(schema: SchemaIndex) -> list[str]:
    """What the hello advertises: base, the features implemented, the modules."""
    caps = [
        BASE_10,
        BASE_11,
        "urn:ietf:params:netconf:capability:writable-running:1.0",
        "urn:ietf:params:netconf:capability:candidate:1.0",
        "urn:ietf:params:netconf:capability:validate:1.1",
        "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
        "urn:ietf:params:netconf:capability:xpath:1.0",
        "urn:ietf:params:netconf:capability:startup:1.0",
        WITH_DEFAULTS_CAPABILITY,
        yanglib.capability(schema),
    ]
    for info in sorted(schema.modules.values(), key=lambda m: m.name):
        uri = f"{info.namespace}?module={info.name}"
        if info.revision:
            uri += f"&revision={info.revision}"
        if info.features:
            uri += "&features=" + ",".join(info.features)
        caps.append(uri)
    return caps


class BootError(Exception):
    """The initial configuration cannot be loaded; the daemon does not start."""


def load_initial(path: Path, schema: SchemaIndex) -> Node:
    """Read and validate a configuration file, or raise BootError naming it."""
    from nf.config import validate

    try:
        tree, errors = load_document(path, schema)
    except OSError as exc:
        raise BootError(f"{path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # XMLSyntaxError, ValueError
        raise BootError(f"{path}: not well-formed XML: {exc}") from exc
    errors += validate(tree, schema)
    if errors:
        raise BootError(f"{path}: invalid configuration:\n" + "\n".join(f"  {e}" for e in errors))
    return tree


@dataclass
class Daemon:
    """A running daemon: datastores on the loop, NETCONF sessions in threads."""

    schema: SchemaIndex
    runtime: Runtime
    users: Users
    state_dir: Path
    listen: Listen = field(default_factory=Listen)
    datastores: Datastores | None = None
    server: NetconfServer | None = None
    address: tuple[str, int] | None = None

    async def start(
        self, portal: BlockingPortal, initial: Node, startup: Node | None = None
    ) -> tuple[str, int]:
        """Apply ``initial`` through the runtime, then open the NETCONF listener.

        ``startup`` is the startup datastore as read at boot (None: no file).
        """
        startup_file = StartupFile(self.state_dir / STARTUP_FILE, self.schema)
        datastores = Datastores(self.schema, self.runtime, Node(), startup_file, startup)
        booting = hasattr(self.runtime, "booting")
        if booting:
            self.runtime.booting = True  # type: ignore[attr-defined]
        try:
            errors = await datastores.copy_config(0, initial, "running")
        finally:
            if booting:
                self.runtime.booting = False  # type: ignore[attr-defined]
        if errors:
            raise BootError(
                "initial configuration refused:\n" + "\n".join(f"  {e}" for e in errors)
            )
        self.datastores = datastores

        caps = capabilities(self.schema)

        def context(server: NetconfServer) -> Context:
            library = yanglib.state_tree(self.schema, datastores.names())

            def monitor(locks: dict[str, tuple[int, str]]) -> Node:
                stats = server.stats
                return merge(
                    library,
                    monitoring.state_tree(
                        self.schema,
                        caps,
                        locks,
                        datastores.names(),
                        [
                            {
                                "session-id": s.id,
                                "transport": "netconf-ssh",
                                "username": s.username,
                                "source-host": s.peer.rsplit(":", 1)[0],
                                "login-time": s.login_time,
                                "in-rpcs": s.rpcs.in_rpcs,
                                "in-bad-rpcs": s.rpcs.in_bad_rpcs,
                                "out-rpc-errors": s.rpcs.out_rpc_errors,
                                "out-notifications": s.rpcs.out_notifications,
                            }
                            for s in server.sessions()
                        ],
                        {
                            "netconf-start-time": stats.start_time,
                            "in-bad-hellos": stats.in_bad_hellos,
                            "in-sessions": stats.in_sessions,
                            "dropped-sessions": stats.dropped_sessions,
                            "in-rpcs": stats.in_rpcs,
                            "in-bad-rpcs": stats.in_bad_rpcs,
                            "out-rpc-errors": stats.out_rpc_errors,
                            "out-notifications": stats.out_notifications,
                        },
                    ),
                )

            return Context(self.schema, datastores, portal, server, monitor)

        def ended(session_id: int) -> None:
            portal.call(datastores.session_ended, session_id)

        host_key = await anyio.to_thread.run_sync(load_host_key, self.state_dir)
        self.server = NetconfServer(context, self.users, host_key, caps, self.listen, ended)
        datastores.is_live = self.server.is_live
        self.address = self.server.start()
        return self.address

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def prepare_state_dir(state_dir: Path) -> tuple[Users, str | None]:
    """Create the state directory and users; return a generated admin password."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    users = Users(state_dir / USERS_FILE)
    return users, ensure_admin(users, dict(os.environ))


def _banner(address: tuple[str, int], password: str | None, source: str) -> str:
    host, port = address
    lines = [
        f"nf {__version__}: NETCONF over SSH on {host}:{port} (configuration: {source})",
    ]
    if password is not None:
        lines.append(f"  generated admin password (shown once, stored hashed): {password}")
    lines += [
        "  connect with ncclient:",
        f"    python -c \"from ncclient import manager; m = manager.connect(host='{host}', "
        f"port={port}, username='admin', password='PASSWORD', hostkey_verify=False); "
        "print(m.get_config('running'))\"",
        "  or with netconf-console2:",
        f"    netconf-console2 --host {host} --port {port} -u admin -p PASSWORD --get-config",
    ]
    return "\n".join(lines)


async def serve(
    state_dir: Path,
    listen: Listen,
    config: Path | None,
    runtime: Runtime | None = None,
    ignore_bad_startup: bool = False,
) -> int:
    """``nf run``: boot, serve until SIGINT/SIGTERM, shut down."""
    # scrypt (16 MiB) before the schema is compiled: a lower peak RSS
    users, password = prepare_state_dir(state_dir)
    schema = default_schema()
    startup_path = state_dir / STARTUP_FILE
    startup: Node | None = None
    if startup_path.exists():
        try:
            startup = load_initial(startup_path, schema)
        except BootError as exc:
            if not ignore_bad_startup:
                print(f"nf: cannot boot from the startup datastore: {exc}", file=sys.stderr)
                print(
                    "nf: fix or remove the file, or start with --ignore-bad-startup "
                    "to boot an empty configuration",
                    file=sys.stderr,
                )
                return 1
            log.error("ignoring the startup datastore: %s", exc)
            print(f"nf: booting an empty configuration; startup is bad: {exc}", file=sys.stderr)
            startup = Node()
    if config is not None:
        source = str(config)
        try:
            initial = load_initial(config, schema)
        except BootError as exc:
            print(f"nf: cannot boot: {exc}", file=sys.stderr)
            return 1
    elif startup is not None:
        source, initial = str(startup_path), startup
    else:
        source, initial = str(DEMO_CONFIG), load_initial(DEMO_CONFIG, schema)
    relay = RelayRuntime()
    daemon = Daemon(schema, runtime or relay, users, state_dir, listen)
    async with anyio.create_task_group() as tg, BlockingPortal() as portal:
        await tg.start(relay.run)
        try:
            try:
                address = await daemon.start(portal, initial, startup)
            except (BootError, OSError) as exc:
                print(f"nf: cannot start: {exc}", file=sys.stderr)
                return 1
            release_heap()  # what booting (schema, validation) freed: RSS budget
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                # the banner tells supervisors we are up, so handlers come first
                print(_banner(address, password, source), flush=True)
                async for signum in signals:
                    log.info("received %s, shutting down", signal.Signals(signum).name)
                    break
            await anyio.to_thread.run_sync(daemon.close)
        finally:
            await relay.shutdown()
    return 0
