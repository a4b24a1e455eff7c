"""The ``nf`` command line: run the daemon, validate a config offline, print the tree."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nf import __version__

if TYPE_CHECKING:
    from nf.boot import Listen
    from nf.config import ConfigError


def document_errors(data: bytes | str | Path) -> list[ConfigError]:
    """Every error of a configuration document, as ``nf validate`` and the
    server see them; raises OSError, lxml's XMLSyntaxError or ValueError when
    it cannot be read as XML."""
    from nf.config import load_document, validate
    from nf.schema import default_schema

    schema = default_schema()
    tree, errors = load_document(data, schema)
    return errors + validate(tree, schema)


def _validate(args: argparse.Namespace) -> int:
    from lxml import etree

    path = Path(args.file)
    try:
        errors = document_errors(path)
    except OSError as exc:
        print(f"nf validate: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except (etree.XMLSyntaxError, ValueError) as exc:
        print(f"{path}: not well-formed XML: {exc}", file=sys.stderr)
        return 1
    for error in errors:
        print(f"{path}: {error}")
        for name, text in error.info:
            if name != "bad-element":
                print(f"    {name}: {text}")
    if errors:
        print(f"{path}: {len(errors)} error{'s' if len(errors) != 1 else ''}")
        return 1
    if not args.quiet:
        print(f"{path}: valid")
    return 0


def _tree(args: argparse.Namespace) -> int:
    """Print the module's tree exactly as ``pyang -f tree`` does."""
    from nf.schema import MAIN_MODULE, YANG_DIR

    cmd = [sys.executable, "-m", "pyang", "-f", "tree", "-p", str(YANG_DIR)]
    if args.depth is not None:
        cmd += ["--tree-depth", str(args.depth)]
    cmd.append(str(YANG_DIR / f"{MAIN_MODULE}.yang"))
    # captured, then printed here: a reader that stops early (nf tree | head)
    # is then one quiet broken pipe of ours, not a traceback of pyang's
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    try:
        sys.stdout.write(done.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    return done.returncode


def _run(args: argparse.Namespace) -> int:
    """Every boot failure is one line on stderr and exit status 1, before the
    banner; the state directory and the NETCONF port are checked before the
    daemon's slow imports (nf.boot).  This process is the supervisor of the
    two planes (nf.plane.supervisor); --single-process runs both in it."""
    from nf.boot import EXIT_BOOT_FAILED, BootError, bind_unix, open_state_dir

    listen = _listen(args.listen, "--listen")
    tls_listen = _listen(args.tls_listen, "--tls-listen") if args.tls_listen else None
    if listen is None or (args.tls_listen and tls_listen is None):
        return 2
    transport_config = Path(args.transport_config).absolute() if args.transport_config else None
    subsystem_socket = Path(args.subsystem_socket).absolute() if args.subsystem_socket else None
    if tls_listen is not None and transport_config is None:
        print(
            "nf run: --tls-listen needs --transport-config FILE (certificates, cert-to-name)",
            file=sys.stderr,
        )
        return 2
    config = Path(args.config) if args.config else None
    cpus = None
    if args.data_plane_cpus:
        from nf.plane.supervisor import parse_cpus

        try:
            cpus = parse_cpus(args.data_plane_cpus)
        except ValueError as exc:
            print(f"nf run: --data-plane-cpus: {exc}", file=sys.stderr)
            return 2
    try:
        state_dir = open_state_dir(Path(args.state_dir))
        logging.basicConfig(
            level=getattr(logging, args.log_level.upper()),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if not args.single_process:
            from nf.plane.supervisor import Options, cpu_split, lock_state_dir, supervise

            data_cpus, control_cpus = cpu_split(cpus)  # unusable CPUs: refused now
            lock = lock_state_dir(state_dir)  # before the port: its holder is named
            listener = listen.bind()
            tls_listener = tls_listen.bind() if tls_listen is not None else None
            subsystem = bind_unix(subsystem_socket) if subsystem_socket is not None else None
            options = Options(
                state_dir,
                config,
                args.log_level,
                args.ignore_bad_startup,
                args.demo_port,
                data_cpus,
                control_cpus,
                transport_config,
            )
            return supervise(options, listener, lock, tls_listener, subsystem)
        listener = listen.bind()
        tls_listener = tls_listen.bind() if tls_listen is not None else None
        subsystem = bind_unix(subsystem_socket) if subsystem_socket is not None else None
        import anyio

        from nf.app import serve

        try:
            return anyio.run(
                serve,
                state_dir,
                listener,
                config,
                None,
                args.ignore_bad_startup,
                None,
                args.demo_port,
                tls_listener,
                transport_config,
                subsystem,
            )
        finally:
            if subsystem_socket is not None:  # no file left that nobody answers on
                subsystem_socket.unlink(missing_ok=True)
    except BootError as exc:
        print(f"nf: {exc}", file=sys.stderr)
        return EXIT_BOOT_FAILED
    except KeyboardInterrupt:  # pragma: no cover - signal arrived before the receiver
        return 0


def _listen(text: str, option: str) -> Listen | None:
    """HOST:PORT (IPv6 in brackets) as a Listen; None, having said why, otherwise."""
    from nf.boot import Listen

    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        print(f"nf run: {option} wants HOST:PORT, got {text!r}", file=sys.stderr)
        return None
    return Listen(host.strip("[]"), int(port))


def _user(args: argparse.Namespace) -> int:
    import getpass
    import os

    import paramiko
    from paramiko.pkey import PublicBlob

    from nf.northbound.auth import USERS_FILE, Users

    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    users = Users(state_dir / USERS_FILE)
    if args.action == "list":
        for user in sorted(users.users.values(), key=lambda u: u.name):
            auth = (["password"] if user.password_hash else []) + [
                f"{len(user.authorized_keys)} key(s)"
            ]
            print(f"{user.name}: {', '.join(auth)}")
        return 0
    if not args.name:
        print(f"nf user {args.action}: a user name is required", file=sys.stderr)
        return 2
    if args.action == "passwd":
        password = os.environ.get("NF_PASSWORD") or (
            sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
        )
        if not password:
            print("nf user passwd: empty password refused", file=sys.stderr)
            return 2
        users.set_password(args.name, password)
    elif args.action == "add-key":
        if not args.key:
            print(
                "nf user add-key: --key FILE (an OpenSSH public key) is required", file=sys.stderr
            )
            return 2
        line = Path(args.key).read_text(encoding="utf-8").strip()
        parts = line.split()
        try:
            PublicBlob.from_string(line)
        except (ValueError, paramiko.SSHException) as exc:
            print(
                f"nf user add-key: {args.key} is not an OpenSSH public key: {exc}", file=sys.stderr
            )
            return 2
        users.add_key(args.name, " ".join(parts[:3]))
    elif args.action == "remove" and not users.remove(args.name):
        print(f"nf user remove: no user {args.name!r}", file=sys.stderr)
        return 1
    users.save()
    print(f"nf user {args.action}: {args.name} saved in {users.path}")
    return 0


def _port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nf",
        description="Serial-over-IP network function managed over NETCONF/YANG.",
    )
    parser.add_argument("--version", action="version", version=f"nf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the daemon (with no configuration: the embedded loop:// demo)",
        description=(
            "Run the daemon: NETCONF over SSH on --listen, over TLS on --tls-listen (off by "
            "default), from the host's sshd through nf-subsystem on --subsystem-socket (off "
            "by default), and call home to the managers of --transport-config. It boots from "
            "--config, else "
            "from STATE_DIR/startup.xml, else from the embedded demo (a loop:// serial port "
            "and a TCP server channel on 127.0.0.1:8301, or --demo-port); but if the last "
            "run stopped with a confirmed commit pending (STATE_DIR/confirmed-commit.xml), "
            "it boots the configuration of before that commit. The admin password is generated "
            "and printed once on first start (reset it with nf user passwd admin), or set "
            "with NF_ADMIN_PASSWORD. If the daemon cannot start (NETCONF port busy, bad "
            "configuration, unusable state directory) it prints one line saying why and "
            "exits with status 1. admin is the "
            "NACM (RFC 8341) recovery user: never restricted by /nacm."
        ),
    )
    run.add_argument(
        "--listen",
        default="127.0.0.1:8300",
        help="NETCONF over SSH: HOST:PORT (default %(default)s)",
    )
    run.add_argument(
        "--tls-listen",
        metavar="HOST:PORT",
        help="also serve NETCONF over TLS (RFC 7589; TLS 1.2 or later, client certificates "
        "mapped to user names) on HOST:PORT, e.g. 0.0.0.0:6513 (default: off); needs "
        "--transport-config",
    )
    run.add_argument(
        "--subsystem-socket",
        metavar="PATH",
        help="also take NETCONF sessions from the host's sshd: a Unix socket (mode 0660) "
        "for nf-subsystem, sshd's netconf subsystem (sshd_config: Subsystem netconf "
        "/path/to/nf-subsystem PATH); the session's user is the local account sshd "
        "logged in (default: off; README: NETCONF over the host's OpenSSH)",
    )
    run.add_argument(
        "--transport-config",
        metavar="FILE",
        help="TOML file: the TLS server certificate, key and client CAs, the cert-to-name "
        "map, and the managers to call home to (RFC 8071, over SSH or TLS); private keys "
        "readable by group or others are refused (README: NETCONF over TLS and call home)",
    )
    run.add_argument(
        "--state-dir", default=".nf-state", help="host key, users, startup (default %(default)s)"
    )
    run.add_argument("--config", help="boot from this configuration file")
    run.add_argument(
        "--ignore-bad-startup",
        action="store_true",
        help="if STATE_DIR/startup.xml or confirmed-commit.xml is corrupt or invalid, "
        "boot an empty configuration "
        "(default: refuse to start, naming the file and the error)",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--single-process",
        action="store_true",
        help="run the control plane and the relays in one process (debugging, profiling); "
        "by default the relays run in a data-plane process of their own, so that NETCONF "
        "work never delays a serial byte and either can be restarted without the other",
    )
    run.add_argument(
        "--demo-port",
        type=_port_number,
        default=0,
        metavar="PORT",
        help="where the embedded demo's channel listens when the demo is booted (default 8301)",
    )
    run.add_argument(
        "--data-plane-cpus",
        metavar="LIST",
        help="run the data plane on these CPUs alone (e.g. 1, or 2-3, or auto: the last "
        "CPU when there are two or more) and the control plane on the others, so that "
        "management work never takes a relay's CPU (default: both share every CPU, the "
        "control plane at a lower priority)",
    )
    run.set_defaults(func=_run)

    val = sub.add_parser(
        "validate",
        help="validate an XML configuration file against the YANG module",
        description=(
            "Validate a configuration file offline with the validator the server uses. "
            "The file's root is the serial-over-ip element (instance data, as yanglint "
            "takes it) or a NETCONF <config>/<data> wrapper around it. Prints each "
            "error with its instance path; exit status 1 when there are errors."
        ),
    )
    val.add_argument("file", help="XML configuration file")
    val.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    val.set_defaults(func=_validate)

    user = sub.add_parser(
        "user",
        help="manage NETCONF users (password, SSH public keys)",
        description=(
            "Manage the users in STATE_DIR/users.json; a running daemon picks up changes. "
            "passwd reads the password from NF_PASSWORD, stdin or a prompt and stores "
            "only its scrypt hash.  Access control is NACM (RFC 8341, /nacm in running): "
            "admin is the recovery user and is never restricted; every other user may "
            "read (except /nacm) and run operations but not write until a /nacm rule-list "
            "of one of their groups permits it."
        ),
    )
    user.add_argument("action", choices=["list", "passwd", "add-key", "remove"])
    user.add_argument("name", nargs="?", help="user name")
    user.add_argument("--key", help="OpenSSH public key file, for add-key")
    user.add_argument("--state-dir", default=".nf-state", help="(default %(default)s)")
    user.set_defaults(func=_user)

    tree = sub.add_parser("tree", help="print the YANG tree of the module")
    tree.add_argument("--depth", type=int, default=None, help="limit the depth printed")
    tree.set_defaults(func=_tree)

    from nf.sim.cli import add_parser as add_sim

    add_sim(sub)

    from nf.importers.cli import add_parser as add_import

    add_import(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
