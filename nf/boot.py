"""The first steps of ``nf run``: what can fail at once fails before the slow ones.

Importing the daemon (paramiko, lxml, the schema) takes about a second;
a busy NETCONF port or a state directory that cannot be one must not wait
for that, nor leave a half-started daemon behind.  So ``nf run`` opens the
state directory and binds the NETCONF listener with this module alone
(standard library only), and only then imports the rest.  Every boot
failure is a BootError: ``nf run`` prints it as one line on stderr and
exits 1.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_BOOT_FAILED = 1
"""``nf run``'s exit status when the daemon cannot start (2: bad arguments)."""


class BootError(Exception):
    """The daemon cannot start; ``str()`` is one line naming the file or address."""


def one_line(what: str, errors: Sequence[object], hint: str) -> str:
    """``what: first error`` and how many more, for a list of errors that
    would otherwise take a screen: ``hint`` says where to see them all."""
    first = " ".join(str(errors[0]).split())
    more = len(errors) - 1
    return f"{what}: {first}" + (f" (and {more} more: {hint})" if more else "")


def reason(exc: OSError) -> str:
    """An OSError's cause without the ``[Errno N]`` and path decoration."""
    return exc.strerror or str(exc)


@dataclass
class Listen:
    """Where NETCONF over SSH listens (``--listen HOST:PORT``)."""

    host: str = "127.0.0.1"
    port: int = 8300

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def bind(self) -> socket.socket:
        """A listening socket, or BootError: ``cannot listen on ADDRESS: cause``."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(256)
        except OSError as exc:
            sock.close()
            raise BootError(f"cannot listen on {self}: {reason(exc)}") from exc
        except BaseException:
            sock.close()
            raise
        return sock


def bind_unix(path: Path) -> socket.socket:
    """The Unix socket nf-subsystem connects to (``--subsystem-socket``),
    listening, mode 0660; BootError naming it.  A socket file left by a
    daemon that is gone is replaced; one a live daemon answers on is not."""
    path = path.absolute()
    if path.is_socket():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink(missing_ok=True)  # nobody listens: a stale one
            else:
                raise BootError(f"cannot listen on {path}: a daemon listens there already")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o660)  # the group sshd's users are in; see nf.northbound.subsystem
        sock.listen(256)
    except OSError as exc:
        sock.close()
        raise BootError(f"cannot listen on {path}: {reason(exc)}") from exc
    return sock


def open_state_dir(path: Path) -> Path:
    """Create the state directory (mode 0700) and prove it writable; its
    absolute path, or BootError naming it.  Writing is tried for real (a
    nameless temporary file): permission bits say nothing to root, and a
    read-only file system shows only then."""
    path = path.absolute()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError as exc:  # mkdir on a regular file
        raise BootError(f"state directory {path}: Not a directory") from exc
    except OSError as exc:
        raise BootError(f"state directory {path}: {reason(exc)}") from exc
    return path
