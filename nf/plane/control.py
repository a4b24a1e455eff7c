"""The control-plane process: SSH, NETCONF, datastores, validation.

Started by the supervisor (``nf.plane.supervisor``), never by hand: it
inherits the NETCONF listener (``--listen-fd``) and a pipe on which it
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nf.plane.control")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--dataplane", required=True, help="the data plane's Unix socket")
    parser.add_argument("--config")
    parser.add_argument("--ignore-bad-startup", action="store_true")
    parser.add_argument("--restarted", action="store_true")
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[control]: %(message)s",
    )
    listener = socket.socket(fileno=args.listen_fd)
    ready_fd: int = args.ready_fd

    def ready() -> None:
        os.write(ready_fd, b"r")

    import anyio

    from nf.app import serve
    from nf.plane.remote import connect

    async def control() -> int:
        async with connect(Path(args.dataplane)) as runtime:
            return await serve(
                Path(args.state_dir),
                listener,
                Path(args.config) if args.config else None,
                runtime,
                args.ignore_bad_startup,
                ready,
            )

    try:
        return anyio.run(control)
    except BootError as exc:
        print(f"nf: {exc}", file=sys.stderr)
        return EXIT_BOOT_FAILED


if __name__ == "__main__":  # pragma: no cover - run by the supervisor
    sys.exit(main())
