"""The control-plane process: SSH, NETCONF, datastores, validation.

Started by the supervisor (``nf.plane.supervisor``), never by hand: it
inherits the NETCONF listeners (``--listen-fd``, ``--tls-listen-fd``
for NETCONF over TLS, ``--subsystem-fd`` for sshd's) and a pipe on which it
says when it serves (``--ready-fd``), and reaches the data plane on its
Unix socket (``--dataplane``).  Everything else is ``nf.app.serve`` with a
remote runtime: a first boot applies the boot configuration to the data
plane; a restart re-reads what the data plane runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from nf.boot import EXIT_BOOT_FAILED, BootError

PIPE_MESSAGE = 4000
"""A boot failure's line, at most: one atomic write on the pipe (PIPE_BUF)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nf.plane.control")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--tls-listen-fd", type=int, help="NETCONF over TLS (nf run --tls-listen)")
    parser.add_argument(
        "--subsystem-fd", type=int, help="nf-subsystem's Unix socket (nf run --subsystem-socket)"
    )
    parser.add_argument("--transport-config", help="TLS and call home (nf.northbound.transports)")
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--dataplane", required=True, help="the data plane's Unix socket")
    parser.add_argument("--config")
    parser.add_argument("--ignore-bad-startup", action="store_true")
    parser.add_argument("--demo-port", type=int, default=0)
    parser.add_argument(
        "--restarts", type=int, default=0, help="control planes that died before this one"
    )
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[control]: %(message)s",
    )
    listener = socket.socket(fileno=args.listen_fd)
    tls_listener = None if args.tls_listen_fd is None else socket.socket(fileno=args.tls_listen_fd)
    subsystem = None if args.subsystem_fd is None else socket.socket(fileno=args.subsystem_fd)
    ready_fd: int = args.ready_fd

    def ready() -> None:
        os.write(ready_fd, b"r")  # serving: the supervisor restarts it from now on

    import anyio

    from nf.app import Supervision, serve
    from nf.plane.remote import DataPlaneUnavailable, RemoteRuntime

    async def control() -> int:
        runtime = RemoteRuntime(Path(args.dataplane))
        failed: BootError | None = None
        async with anyio.create_task_group() as tg:
            try:
                await tg.start(runtime.run)
            except DataPlaneUnavailable as exc:
                raise BootError(f"no data plane: {exc}") from exc
            try:
                return await serve(
                    Path(args.state_dir),
                    listener,
                    Path(args.config) if args.config else None,
                    runtime,
                    args.ignore_bad_startup,
                    Supervision(ready, args.restarts, lambda: runtime.stats),
                    args.demo_port,
                    tls_listener,
                    Path(args.transport_config) if args.transport_config else None,
                    subsystem,
                )
            except BootError as exc:  # raised as itself, not in an exception group
                failed = exc
            finally:
                tg.cancel_scope.cancel()
        assert failed is not None
        raise failed

    try:
        return anyio.run(control)
    except BootError as exc:
        # the supervisor prints it once it has stopped the data plane, so
        # that it is the last line of a failed nf run, whatever the data
        # plane logs as it stops
        os.write(ready_fd, b"F" + f"nf: {exc}".encode()[:PIPE_MESSAGE])
        return EXIT_BOOT_FAILED


if __name__ == "__main__":  # pragma: no cover - run by the supervisor
    sys.exit(main())
