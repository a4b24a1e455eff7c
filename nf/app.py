"""Composition root: the event loop, the portal, the datastores and the NETCONF threads.

The relay runtime and the datastores live on one anyio event loop.  The
NETCONF server runs its sessions in threads; the only bridge between the two
is an anyio BlockingPortal, so nothing in a NETCONF thread touches runtime
objects directly.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import paramiko
from anyio.from_thread import BlockingPortal
from lxml import etree

from nf import __version__, heap
from nf.boot import BootError, one_line, reason
from nf.config import load_document
from nf.config.tree import Node, merge
from nf.config.validate import Instance
from nf.northbound import monitoring, notifications, yanglib
from nf.northbound import transports as transports_file
from nf.northbound.auth import (
    HOST_KEY_FILE,
    USERS_FILE,
    AdminPassword,
    Users,
    ensure_admin,
    load_host_key,
)
from nf.northbound.callhome import CallHomeClient
from nf.northbound.datastores import Datastores
from nf.northbound.defaults import CAPABILITY as WITH_DEFAULTS_CAPABILITY
from nf.northbound.notifications import Notifications
from nf.northbound.operational import processes_tree
from nf.northbound.rpcs import Context
from nf.northbound.server import BASE_10, BASE_11, NetconfServer, SessionRegistry
from nf.northbound.startup import BadStateFile, ConfirmedCommitFile, StartupFile
from nf.northbound.subsystem import SubsystemService
from nf.northbound.throttle import Policy, Throttle
from nf.northbound.tls import TlsService
from nf.northbound.transports import Transports
from nf.northbound.xpath_sandbox import XPathSandbox
from nf.plane.remote import PlaneStats
from nf.runtime.transaction import Runtime
from nf.schema import MAIN_MODULE, SchemaIndex, default_schema
from nf.store.engine import CommitEvent

log = logging.getLogger("nf")

DEMO_CONFIG = Path(__file__).resolve().parent / "data" / "demo.xml"
DEMO_PORT = 8301
"""The TCP port of the demo's channel, as demo.xml has it (nf run --demo-port)."""
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


def load_initial(source: Path | bytes, schema: SchemaIndex, name: str = "") -> Node:
    """Read and validate a configuration file (or document, called
    ``name``), or raise BootError naming it (the first error; ``nf
    validate`` lists them all)."""
    return load_checked(source, schema, name)[0]


def load_checked(
    source: Path | bytes, schema: SchemaIndex, name: str = ""
) -> tuple[Node, Instance]:
    """``load_initial``, also returning the validated instance document: the
    configuration booted from it is not validated a second time (at 10 000
    channels each validation costs seconds)."""
    from nf.config.validate import check

    what = name or str(source)
    with heap.gc_paused():  # a big configuration: many lasting objects, nothing to collect
        try:
            tree, errors = load_document(source, schema)
        except OSError as exc:
            raise BootError(f"{what}: {reason(exc)}") from exc
        except Exception as exc:  # XMLSyntaxError, ValueError
            raise BootError(f"{what}: not well-formed XML: {exc}") from exc
        more, instance = check(tree, schema, keep_xml=True)  # to boot: see Instance.rendered
    errors += more
    if errors:
        hint = f"nf validate {source}" if isinstance(source, Path) else "see the log"
        raise BootError(one_line(f"{what}: invalid configuration", errors, hint))
    return tree, instance


@dataclass(frozen=True)
class Supervision:
    """What a control plane under the supervisor (nf.plane.control) has
    beyond a daemon in one process."""

    ready: Callable[[], None]
    """Says the control plane serves: the supervisor restarts it from then on."""
    control_restarts: int
    """How many control planes died before this one."""
    plane_stats: Callable[[], PlaneStats]
    """The data plane's restarts as this control plane has seen them."""


@dataclass
class Daemon:
    """A running daemon: datastores on the loop, NETCONF sessions in threads."""

    schema: SchemaIndex
    runtime: Runtime
    users: Users
    state_dir: Path
    listener: socket.socket
    """The NETCONF socket, bound and listening (nf.boot.Listen.bind)."""
    datastores: Datastores | None = None
    server: NetconfServer | None = None
    address: tuple[str, int] | None = None
    _timer_task: Future[None] | None = field(default=None, init=False, repr=False)
    notifications: Notifications | None = None
    login_policy: Policy = field(default_factory=Policy)
    """How failed logins are throttled per source address."""
    _xpath: XPathSandbox | None = field(default=None, init=False, repr=False)
    supervision: Supervision | None = None
    tls_listener: socket.socket | None = None
    """NETCONF over TLS, bound and listening (nf run --tls-listen), or None."""
    subsystem_listener: socket.socket | None = None
    """nf-subsystem's Unix socket, listening (nf run --subsystem-socket), or None."""
    subsystem: SubsystemService | None = None
    subsystem_path: str | None = None
    transports: Transports = field(default_factory=Transports)
    """TLS settings and call-home managers (nf.northbound.transports)."""
    tls: TlsService | None = None
    call_home: list[CallHomeClient] = field(default_factory=list)
    tls_address: tuple[str, int] | None = None

    async def start(
        self,
        portal: BlockingPortal,
        initial: Node,
        startup: Node | None = None,
        attached: bool = False,
        checked: Instance | None = None,
    ) -> tuple[str, int]:
        """Apply ``initial`` through the runtime, then accept NETCONF sessions.

        ``checked``: ``initial``'s instance document, if it was validated as
        it was read (it is not validated again).

        ``startup`` is the startup datastore as read at boot (None: no file).
        A confirmed-commit file left by the previous run has been read by
        ``serve`` (``initial`` is its rollback configuration); once
        ``initial`` is running the file is removed.  A crash before that
        finds the file again at the next boot and rolls back the same way.

        ``attached``: ``initial`` is what a running data plane runs (this
        control plane was restarted, the relays were not): it becomes
        running as it is, nothing is applied, and a confirmed commit left
        pending by the control plane that died is taken over
        (``Datastores.resume``): its rollback still happens on time.
        """
        # the host key first: a bad one refuses the boot before any serial
        # port or socket of the configuration is opened
        try:
            host_key = await anyio.to_thread.run_sync(load_host_key, self.state_dir)
        except (OSError, paramiko.SSHException) as exc:
            path = self.state_dir / HOST_KEY_FILE
            raise BootError(f"SSH host key {path}: {exc}") from exc
        startup_file = StartupFile(self.state_dir / STARTUP_FILE, self.schema)
        confirmed_file = ConfirmedCommitFile(self.state_dir / CONFIRMED_FILE, self.schema)
        hub = self.notifications = Notifications(self.schema)
        sessions = SessionRegistry()  # before the server: the datastores ask it who lives

        def who(sid: int) -> notifications.Who | None:
            """The live session ``sid`` as RFC 6470 names it; None for the
            server (0) or a session that is gone."""
            return sessions.who(sid) if sid else None

        def config_changed(event: CommitEvent) -> None:
            if event.changes:
                hub.publish(
                    notifications.config_change(
                        who(event.sid), event.changes, self.schema, event.datastore
                    )
                )

        def runtime_event(kind: str, payload: dict[str, str]) -> None:
            if kind in ("session-event", "port-event"):  # "drops" is logged, not notified
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

        datastores = Datastores(
            self.schema,
            self.runtime,
            initial if attached else Node(),
            startup_file,
            startup,
            confirmed_file,
            subscribers=(config_changed,),
            confirm_events=confirm_event,
            is_live=sessions.is_live,
        )
        self.runtime.add_event_sink(runtime_event)
        if not attached:
            errors = await datastores.boot(initial, checked)
            if errors:
                raise BootError(one_line("initial configuration refused", errors, "see the log"))
            if confirmed_file.exists():
                await anyio.to_thread.run_sync(confirmed_file.delete)
        self.datastores = datastores
        # the confirmed-commit timer runs in the portal's task group, as long
        # as the daemon; close() cancels it
        self._timer_task, _ = await anyio.to_thread.run_sync(portal.start_task, datastores.run)
        if attached and confirmed_file.exists():
            try:
                saved = await anyio.to_thread.run_sync(confirmed_file.load)
            except BadStateFile as exc:
                # the rollback configuration is lost: keep what runs, say so
                log.error("pending confirmed commit lost: %s", exc)
            else:
                # a persistent one keeps its deadline; a non-persistent one
                # was bound to a session of the control plane that died,
                # which has ended: it rolls back now (RFC 6241 §8.4.1)
                log.warning("taking over the confirmed commit pending at the restart")
                datastores.confirmed.resume(saved)
                if saved.persist is None:
                    await datastores.session_ended(saved.owner)

        caps = capabilities(self.schema)
        xpath = self._xpath = XPathSandbox()
        namespace = self.schema.modules[MAIN_MODULE].namespace

        supervision = self.supervision

        def extra_state(server: NetconfServer) -> Node:
            state = server.throttle.state(namespace)
            if supervision is None:  # one process: no plane restarts on its own
                return merge(state, processes_tree(self.schema, 0, 0, 0))
            stats = supervision.plane_stats()
            planes = processes_tree(
                self.schema,
                supervision.control_restarts,
                stats.restarts,
                stats.sessions_dropped,
            )
            return merge(state, planes)

        def context(server: NetconfServer) -> Context:
            library = yanglib.state_tree(self.schema, datastores.nmda_names())

            def monitor(locks: dict[str, tuple[int, str]]) -> Node:
                stats = server.stats
                return merge(
                    merge(merge(library, hub.streams()), extra_state(server)),
                    monitoring.state_tree(
                        self.schema,
                        caps,
                        locks,
                        datastores.names(),
                        [
                            {
                                "session-id": s.id,
                                "transport": s.transport,
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

        self.server = NetconfServer(
            context,
            self.users,
            host_key,
            caps,
            self.listener,
            ended,
            notifications=hub,
            throttle=Throttle(self.login_policy),
            registry=sessions,
        )
        self._start_transports(self.server)
        self.address = self.server.start()
        return self.address

    def _start_transports(self, server: NetconfServer) -> None:
        """NETCONF over TLS and call home, beside the SSH listener; BootError
        when their files cannot be used."""
        settings = self.transports.tls
        if self.tls_listener is not None and settings is None:
            raise BootError("--tls-listen needs a [tls] table in --transport-config")
        if settings is not None:
            try:
                self.tls = TlsService(server, settings, self.tls_listener)
            except ValueError as exc:
                raise BootError(str(exc)) from exc
            self.tls_listener = None  # the service's now
            self.tls_address = self.tls.start()
        if self.subsystem_listener is not None:
            self.subsystem = SubsystemService(server, self.subsystem_listener)
            self.subsystem_listener = None  # the service's now
            self.subsystem_path = self.subsystem.start()
        for target in self.transports.call_home:
            if target.transport == "tls":
                assert self.tls is not None  # transports.load checks it
                client = CallHomeClient(target, server, self.tls.serve)
            else:
                client = CallHomeClient(target, server, server.serve_ssh)
            self.call_home.append(client)
            client.start()

    def close(self) -> None:
        """Stop the NETCONF server (sessions end: their non-persistent confirmed
        commits roll back), then the confirmed-commit timer.  A pending
        persistent confirmed commit stays on disk for the next boot.  Also
        what a failed ``start`` leaves."""
        for client in self.call_home:
            client.stop()
        if self.server is not None:
            self.server.close()
        else:
            self.listener.close()
        if self.tls is not None:
            self.tls.close()
        elif self.tls_listener is not None:
            self.tls_listener.close()
        if self.subsystem is not None:
            self.subsystem.close()
        elif self.subsystem_listener is not None:
            self.subsystem_listener.close()
        for client in self.call_home:
            client.join()
        if self._timer_task is not None:
            self._timer_task.cancel()
            self._timer_task = None
        if self._xpath is not None:
            self._xpath.close()


def load_users(state_dir: Path) -> tuple[Users, AdminPassword]:
    """The users of the state directory (opened by nf.boot.open_state_dir)
    and the admin password of this start, not saved yet (see ensure_admin)."""
    path = state_dir / USERS_FILE
    try:
        users = Users(path)
    except OSError as exc:
        raise BootError(f"{path}: {reason(exc)}") from exc
    except (ValueError, AttributeError) as exc:  # not JSON, or not the expected objects
        raise BootError(f"{path}: not a users file: {exc}") from exc
    return users, ensure_admin(users, dict(os.environ))


def _banner(
    address: tuple[str, int], admin: AdminPassword, source: str, state_dir: Path, daemon: Daemon
) -> str:
    host, port = address
    lines = [
        f"nf {__version__}: NETCONF over SSH on {host}:{port} (configuration: {source})",
        f"  state directory: {state_dir}",
    ]
    if daemon.tls_address is not None:
        lines.append("  NETCONF over TLS on {}:{}".format(*daemon.tls_address))
    if daemon.subsystem_path is not None:
        helper = Path(sys.executable).parent / "nf-subsystem"  # beside it in a venv
        where = str(helper) if helper.exists() else shutil.which("nf-subsystem") or "nf-subsystem"
        lines.append(
            f"  NETCONF from the host's sshd on {daemon.subsystem_path}: in sshd_config, "
            f"Subsystem netconf {where} {daemon.subsystem_path}"
        )
    lines += [f"  {client.target}, {client.target.connection}" for client in daemon.call_home]
    if admin.generated is not None:
        lines.append(f"  generated admin password (shown once, stored hashed): {admin.generated}")
    else:
        how = "from NF_ADMIN_PASSWORD" if admin.source == "environment" else "as set before"
        lines.append(
            f"  admin password: {how}; to reset it: nf user passwd admin --state-dir {state_dir}"
        )
    lines += [
        "  connect with ncclient:",
        f"    python -c \"from ncclient import manager; m = manager.connect(host='{host}', "
        f"port={port}, username='admin', password='PASSWORD', hostkey_verify=False); "
        "print(m.get_config('running'))\"",
        "  or with netconf-console2:",
        f"    netconf-console2 --host {host} --port {port} -u admin -p PASSWORD --get-config",
    ]
    return "\n".join(lines)


def _bad_state_file(what: str, exc: Exception, ignore: bool) -> Node:
    """A corrupt or invalid file of the state directory (``exc`` names it):
    BootError, or with --ignore-bad-startup an empty configuration to boot
    instead.  Never half-load such a file."""
    if not ignore:
        raise BootError(
            f"{what}: {exc}; fix or remove the file, or start with --ignore-bad-startup "
            "to boot an empty configuration"
        ) from exc
    log.error("%s, ignored: %s", what, exc)
    print(f"nf: booting an empty configuration; {what}: {exc}", file=sys.stderr)
    return Node()


async def serve(
    state_dir: Path,
    listener: socket.socket,
    config: Path | None,
    runtime: Runtime | None = None,
    ignore_bad_startup: bool = False,
    supervision: Supervision | None = None,
    demo_port: int = 0,
    tls_listener: socket.socket | None = None,
    transport_config: Path | None = None,
    subsystem_listener: socket.socket | None = None,
) -> int:
    """The control plane once ``state_dir`` is open and ``listener`` bound:
    boot, serve until SIGINT/SIGTERM, shut down.  A boot that fails raises
    BootError, having stopped whatever it started: nothing keeps the
    process alive after it.

    ``runtime`` is the data plane (``nf.plane.remote``: another process);
    None runs the relays in this process (single-process mode).  When it
    already runs a configuration, this control plane was restarted: it
    re-reads running from the data plane instead of booting one.
    ``supervision``: this is the control plane of nf run (nf.plane.control).
    ``demo_port``: where the embedded demo's channel listens, if the demo
    is booted (0: its own port, DEMO_PORT).  ``tls_listener``: NETCONF
    over TLS (nf run --tls-listen); ``transport_config``: its certificates
    and cert-to-name map, and the call-home managers (nf.northbound.transports);
    ``subsystem_listener``: sessions from sshd (nf run --subsystem-socket)."""
    heap.bound_large_blocks()
    try:
        transports = _transports(transport_config)
        # scrypt (16 MiB) before the schema is compiled: a lower peak RSS
        users, admin = load_users(state_dir)
        schema = default_schema()
        attached = await _attached(runtime, schema)
        if attached is None:
            source, initial, startup, checked = _initial_configuration(
                state_dir, schema, config, ignore_bad_startup, demo_port
            )
        else:
            source, initial, checked = "re-read from the running data plane", attached, None
            startup = _startup(state_dir, schema, ignore_bad_startup)[0]
    except BaseException:
        listener.close()
        if tls_listener is not None:
            tls_listener.close()
        if subsystem_listener is not None:
            subsystem_listener.close()
        raise
    relay = None
    if runtime is None:  # one process: the relays run here (nf.plane.control gives its own)
        from nf.runtime.relay import RelayRuntime  # the control plane never loads the relays

        runtime = relay = RelayRuntime()
    daemon = Daemon(
        schema,
        runtime,
        users,
        state_dir,
        listener,
        supervision=supervision,
        tls_listener=tls_listener,
        transports=transports,
        subsystem_listener=subsystem_listener,
    )
    failed: BootError | None = None
    async with anyio.create_task_group() as tg, BlockingPortal() as portal:
        if relay is not None:
            await tg.start(relay.run)
        try:
            try:
                address = await daemon.start(
                    portal, initial, startup, attached is not None, checked
                )
                if admin.changed:  # stored now, just before it is printed
                    await anyio.to_thread.run_sync(_save, users)
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(daemon.close)
                if not isinstance(exc, BootError):
                    raise
                failed = exc  # raised out of the task group, not wrapped in a group
            else:
                heap.release()  # what booting (schema, validation) freed: RSS budget
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    # the banner tells supervisors we are up, so handlers come first
                    if attached is None:
                        print(_banner(address, admin, source, state_dir, daemon), flush=True)
                    else:
                        log.warning(
                            "control plane restarted: running %s, NETCONF on %s:%d",
                            source,
                            *address[:2],
                        )
                    if supervision is not None:
                        supervision.ready()
                    async for signum in signals:
                        log.info("received %s, shutting down", signal.Signals(signum).name)
                        break
                await anyio.to_thread.run_sync(daemon.close)
        finally:
            if relay is not None:
                await relay.shutdown()
    if failed is not None:
        raise failed
    return 0


def _transports(path: Path | None) -> Transports:
    """The transport file (TLS, call home), or BootError naming what is wrong."""
    if path is None:
        return Transports()
    try:
        return transports_file.load(path)
    except ValueError as exc:
        raise BootError(str(exc)) from exc


def _save(users: Users) -> None:
    try:
        users.save()
    except OSError as exc:  # the file named is users.json or its temporary copy
        raise BootError(f"{exc.filename or users.path}: {reason(exc)}") from exc


async def _attached(runtime: Runtime | None, schema: SchemaIndex) -> Node | None:
    """The configuration a data plane already runs, or None for a data
    plane that runs nothing yet (a first boot).  A document that does not
    parse or validate here (this control plane is of another version) is
    not adopted: the boot configuration replaces it."""
    if runtime is None:
        return None
    running = await runtime.running()
    if running is None:
        return None
    _config, document = running
    try:
        return load_initial(document, schema, "the data plane's running configuration")
    except BootError as exc:
        log.error("%s; not adopted: the boot configuration replaces it", exc)
        return None


def _startup(
    state_dir: Path, schema: SchemaIndex, ignore_bad_startup: bool
) -> tuple[Node | None, Instance | None]:
    """The startup datastore as read from its file (None: no file), and its
    instance document if it validated."""
    startup_path = state_dir / STARTUP_FILE
    if not startup_path.exists():
        return None, None
    try:
        return load_checked(startup_path, schema)
    except BootError as exc:
        bad = "cannot boot from the startup datastore"
        return _bad_state_file(bad, exc, ignore_bad_startup), None


def demo(schema: SchemaIndex, port: int = DEMO_PORT) -> Node:
    """The embedded demo configuration, its channel listening on ``port``."""
    from nf.config.edit import edit_partial

    tree = load_initial(DEMO_CONFIG, schema)
    if port == DEMO_PORT:
        return tree
    ns = schema.modules[MAIN_MODULE].namespace
    change = (
        f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><serial-over-ip xmlns="{ns}">'
        f"<channel><name>demo</name><description>connect to 127.0.0.1:{port}; the loop port "
        f"echoes</description><listen><port>{port}</port></listen></channel>"
        "</serial-over-ip></config>"
    )
    tree, errors = edit_partial(tree, etree.fromstring(change), "merge", schema)
    if errors:
        raise BootError(one_line(f"--demo-port {port}", errors, "nf run --help"))
    return tree


def _initial_configuration(
    state_dir: Path,
    schema: SchemaIndex,
    config: Path | None,
    ignore_bad_startup: bool,
    demo_port: int = 0,
) -> tuple[str, Node, Node | None, Instance | None]:
    """What to boot (where it comes from, the tree), the startup datastore
    as read (None: no file), and the booted tree's instance document if it
    was validated as read; BootError when it cannot be read."""
    startup_path = state_dir / STARTUP_FILE
    startup, startup_checked = _startup(state_dir, schema, ignore_bad_startup)
    confirmed_file = ConfirmedCommitFile(state_dir / CONFIRMED_FILE, schema)
    if confirmed_file.exists():
        # the previous run stopped with a confirmed commit pending.  Roll it
        # back (boot the configuration of before it, whatever else is there)
        # rather than resume it: nobody confirmed it, its timer could not run
        # while we were down, and an unconfirmed configuration (perhaps the
        # one that cut the operator off) must not come back by itself
        try:
            rollback = confirmed_file.load().rollback
        except BadStateFile as exc:
            rollback = _bad_state_file(
                "cannot roll back an unconfirmed commit", exc, ignore_bad_startup
            )
        source = f"{confirmed_file.path}: rollback of an unconfirmed commit"
        log.warning("a confirmed commit was pending at shutdown: %s", source)
        return source, rollback, startup, None
    if config is not None:
        try:
            tree, checked = load_checked(config, schema)
        except BootError as exc:
            raise BootError(f"cannot boot: {exc}") from exc
        return str(config), tree, startup, checked
    if startup is not None:
        return str(startup_path), startup, startup, startup_checked
    return str(DEMO_CONFIG), demo(schema, demo_port or DEMO_PORT), startup, None
