"""nf-subsystem: sshd's ``netconf`` subsystem for nf (nf.northbound.subsystem).

sshd starts it as the authenticated user, the SSH channel on its standard
input and output.  It hands those two descriptors and ``$SSH_CONNECTION``
to the control plane over the Unix socket ``nf run --subsystem-socket``
listens on, and waits for the control plane to close the connection (the
session's end), then exits: sshd sends the exit status then (1, and a
line on standard error, when the control plane refused the session).  It carries
no byte of the session itself.  Standard library only: sshd starts one per
session.

While a control plane restarts the socket refuses connections for a
moment: it is tried again for ``RETRY_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import termios
import time
import tty

GREETING = b"nf-subsystem 1\n"
"""What the message to the control plane starts with (then $SSH_CONNECTION
and a newline); nf.northbound.subsystem reads it."""
RETRY_SECONDS = 10.0


def _connect(path: str) -> socket.socket:
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        except BaseException:
            sock.close()
            raise


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print(
            "usage: nf-subsystem SOCKET\n"
            "sshd's netconf subsystem for nf: in sshd_config,\n"
            "  Subsystem netconf /path/to/nf-subsystem SOCKET\n"
            "with SOCKET the path of nf run --subsystem-socket.",
            file=sys.stderr,
        )
        return 2
    try:
        sock = _connect(args[0])
    except OSError as exc:
        print(f"nf-subsystem: cannot connect to {args[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for fd in (0, 1):
        if os.isatty(fd):  # the client asked sshd for a terminal (ssh -tt): no echo,
            with contextlib.suppress(termios.error):  # no line editing, no CR/LF
                tty.setraw(fd, termios.TCSANOW)
    greeting = GREETING + os.environ.get("SSH_CONNECTION", "").encode("utf-8", "replace") + b"\n"
    try:
        socket.send_fds(sock, [greeting], [0, 1])
        # the session's end is the control plane's close of these, not ours
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        said = b""
        while data := sock.recv(4096):
            said = (said + data)[-4096:]
    except OSError as exc:
        print(f"nf-subsystem: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if said:  # the control plane refused the session, and said why
        print(f"nf-subsystem: {said.decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
