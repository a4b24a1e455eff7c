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
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.from_thread import BlockingPortal

from nf import __version__, heap
from nf.config import load_document
from nf.config.diff import Change
from nf.config.tree import Node, merge
from nf.northbound import monitoring, notifications, yanglib
from nf.northbound.auth import USERS_FILE, Users, ensure_admin, load_host_key
from nf.northbound.datastores import Datastores
from nf.northbound.defaults import CAPABILITY as WITH_DEFAULTS_CAPABILITY
from nf.northbound.notifications import Notifications
from nf.northbound.rpcs import Context
from nf.northbound.server import BASE_10, BASE_11, Listen, NetconfServer
from nf.northbound.startup import BadStateFile, ConfirmedCommitFile, StartupFile
from nf.northbound.throttle import Policy, Throttle
from nf.northbound.xpath_sandbox import XPathSandbox
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import Runtime
from nf.schema import MAIN_MODULE, SchemaIndex, default_schema

log = logging.getLogger("nf")

DEMO_CONFIG = Path(__file__).resolve().parent / "data" / "demo.xml"
STARTUP_FILE = "startup.xml"
CONFIRMED_FILE = "confirmed-commit.xml"
"""A pending confirmed commit (RFC 6241 §8.4): exists only while one is pending."""


def capabilities(schema: SchemaIndex) -> list[str]:
    """What the hello advertises: base, the features implemented, the modules."""
    caps = [
        BASE_10,
        BASE_11,
        "urn:ietf:params:netconf:capability:writable-running:1.0",
        "urn:ietf:params:netconf:capability:candidate:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
        "urn:ietf:params:netconf:capability:validate:1.1",
        "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
        "urn:ietf:params:netconf:capability:xpath:1.0",
        "urn:ietf:params:netconf:capability:startup:1.0",
        WITH_DEFAULTS_CAPABILITY,
        *notifications.CAPABILITIES,
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
    _timer_task: Future[None] | None = field(default=None, init=False, repr=False)
    notifications: Notifications | None = None
    login_policy: Policy = field(default_factory=Policy)
    """How failed logins are throttled per source address."""
    _xpath: XPathSandbox | None = field(default=None, init=False, repr=False)

    async def start(
        self, portal: BlockingPortal, initial: Node, startup: Node | None = None
    ) -> tuple[str, int]:
        """Apply ``initial`` through the runtime, then open the NETCONF listener.

        ``startup`` is the startup datastore as read at boot (None: no file).
        A confirmed-commit file left by the previous run has been read by
        ``serve`` (``initial`` is its rollback configuration); once
        ``initial`` is running the file is removed.  A crash before that
        finds the file again at the next boot and rolls back the same way.
        """
        startup_file = StartupFile(self.state_dir / STARTUP_FILE, self.schema)
        confirmed_file = ConfirmedCommitFile(self.state_dir / CONFIRMED_FILE, self.schema)
        datastores = Datastores(
            self.schema, self.runtime, Node(), startup_file, startup, confirmed_file
        )
        hub = self.notifications = Notifications(self.schema)

        def who(sid: int) -> notifications.Who | None:
            """The live session ``sid`` as RFC 6470 names it; None for the
            server (0) or a session that is gone."""
            return self.server.who(sid) if self.server is not None and sid else None

        def config_changed(sid: int, changes: Sequence[Change], datastore: str) -> None:
            hub.publish(notifications.config_change(who(sid), changes, self.schema, datastore))

        def runtime_event(kind: str, payload: dict[str, str]) -> None:
            hub.publish(notifications.relay_event(kind, payload, self.schema))

        known: dict[int, notifications.Who] = {}
        """Who issued the pending confirmed commit: its session may be gone
        by the time its end cancels the commit."""

        def confirm_event(event: str, sid: int, timeout: int | None) -> None:
            live = who(sid)
            if live is not None:
                known[sid] = live
            # RFC 6470 requires the session parameters for all but timeout
            named = live or known.get(sid) or notifications.Who("", sid)
            if event in ("cancel", "timeout", "complete"):
                known.clear()
            hub.publish(notifications.confirmed_commit(event, named, timeout))

        datastores.on_config_change = config_changed
        datastores.on_confirm_event = confirm_event
        self.runtime.add_event_sink(runtime_event)
        self.runtime.booting = True
        try:
            errors = await datastores.copy_config(0, initial, "running")
        finally:
            self.runtime.booting = False
        if errors:
            raise BootError(
                "initial configuration refused:\n" + "\n".join(f"  {e}" for e in errors)
            )
        if confirmed_file.exists():
            await anyio.to_thread.run_sync(confirmed_file.delete)
        self.datastores = datastores
        # the confirmed-commit timer runs in the portal's task group, as long
        # as the daemon; close() cancels it
        self._timer_task, _ = await anyio.to_thread.run_sync(portal.start_task, datastores.run)

        caps = capabilities(self.schema)
        xpath = self._xpath = XPathSandbox()
        namespace = self.schema.modules[MAIN_MODULE].namespace

        def context(server: NetconfServer) -> Context:
            library = yanglib.state_tree(self.schema, datastores.names())

            def monitor(locks: dict[str, tuple[int, str]]) -> Node:
                stats = server.stats
                return merge(
                    merge(merge(library, hub.streams()), server.throttle.state(namespace)),
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

            return Context(
                self.schema, datastores, portal, server, monitor, hub, costly_xpath=xpath.positions
            )

        def ended(session_id: int) -> None:
            portal.call(datastores.session_ended, session_id)

        host_key = await anyio.to_thread.run_sync(load_host_key, self.state_dir)
        self.server = NetconfServer(
            context,
            self.users,
            host_key,
            caps,
            self.listen,
            ended,
            notifications=hub,
            throttle=Throttle(self.login_policy),
        )
        datastores.is_live = self.server.is_live
        self.address = self.server.start()
        return self.address

    def close(self) -> None:
        """Stop the NETCONF server (sessions end: their non-persistent confirmed
        commits roll back), then the confirmed-commit timer.  A pending
        persistent confirmed commit stays on disk for the next boot."""
        if self.server is not None:
            self.server.close()
        if self._timer_task is not None:
            self._timer_task.cancel()
            self._timer_task = None
        if self._xpath is not None:
            self._xpath.close()


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


def _bad_state_file(what: str, exc: Exception, ignore: bool) -> bool:
    """Report a corrupt or invalid file of the state directory (``exc`` names
    it); True when the boot goes on, with an empty configuration, because
    the operator said --ignore-bad-startup.  Never half-load such a file."""
    if not ignore:
        print(f"nf: {what}: {exc}", file=sys.stderr)
        print(
            "nf: fix or remove the file, or start with --ignore-bad-startup "
            "to boot an empty configuration",
            file=sys.stderr,
        )
        return False
    log.error("%s, ignored: %s", what, exc)
    print(f"nf: booting an empty configuration; {what}: {exc}", file=sys.stderr)
    return True


async def serve(
    state_dir: Path,
    listen: Listen,
    config: Path | None,
    runtime: Runtime | None = None,
    ignore_bad_startup: bool = False,
) -> int:
    """``nf run``: boot, serve until SIGINT/SIGTERM, shut down."""
    heap.bound_large_blocks()
    # scrypt (16 MiB) before the schema is compiled: a lower peak RSS
    users, password = prepare_state_dir(state_dir)
    schema = default_schema()
    startup_path = state_dir / STARTUP_FILE
    startup: Node | None = None
    if startup_path.exists():
        try:
            startup = load_initial(startup_path, schema)
        except BootError as exc:
            if not _bad_state_file(
                "cannot boot from the startup datastore", exc, ignore_bad_startup
            ):
                return 1
            startup = Node()
    confirmed_file = ConfirmedCommitFile(state_dir / CONFIRMED_FILE, schema)
    rollback: Node | None = None
    if confirmed_file.exists():
        # the previous run stopped with a confirmed commit pending.  Roll it
        # back (boot the configuration of before it, whatever else is there)
        # rather than resume it: nobody confirmed it, its timer could not run
        # while we were down, and an unconfirmed configuration (perhaps the
        # one that cut the operator off) must not come back by itself
        try:
            rollback = confirmed_file.load().rollback
        except BadStateFile as exc:
            if not _bad_state_file(
                "cannot roll back an unconfirmed commit", exc, ignore_bad_startup
            ):
                return 1
            rollback = Node()
    if rollback is not None:
        source = f"{confirmed_file.path}: rollback of an unconfirmed commit"
        initial = rollback
        log.warning("a confirmed commit was pending at shutdown: %s", source)
    elif config is not None:
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
            heap.release()  # what booting (schema, validation) freed: RSS budget
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
