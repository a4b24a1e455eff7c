"""The service manager's readiness protocol (sd_notify(3)), standard library only.

systemd starts a ``Type=notify`` service with ``NOTIFY_SOCKET`` set to a
Unix datagram socket, a path or, when it begins with ``@``, an abstract
name; the service sends newline-separated ``KEY=VALUE`` assignments to it:
``READY=1`` when it serves, ``STOPPING=1`` when it begins to stop,
``STATUS=...`` a line ``systemctl status`` shows.  Without the variable
(a terminal, a container, a test) nothing is sent.

Why written here rather than the ``sdnotify`` package from PyPI: the
supervisor imports nothing but the standard library (so that nothing
outside it can crash the process the service manager watches), the
protocol is one ``sendto`` that systemd documents as a stable interface,
and the package does no more than these lines (and has had no release
since 2017).  ``vsock:`` addresses (systemd 256, for virtual machines) are
not handled: a daemon in a VM has its own systemd.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("nf.notify")

ENV = "NOTIFY_SOCKET"


class Notifier:
    """Sends to the socket ``NOTIFY_SOCKET`` named when it was taken; a
    notifier with no address sends nothing."""

    def __init__(self, address: str | None) -> None:
        self.address = address

    @classmethod
    def from_environment(cls) -> Notifier:
        """The socket of this process's service manager, taken out of the
        environment so that the processes it starts (the planes) do not
        inherit it and speak for the service (sd_notify's unset_environment)."""
        return cls(os.environ.pop(ENV, None) or None)

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines (``notify(READY="1", STATUS="...")``);
        False if there is no socket or the send failed.  A failure is
        logged, never raised: the daemon serves whether or not its service
        manager hears it (systemd then times the start out by itself)."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), address)
        except OSError as exc:
            log.warning("could not notify the service manager at %s: %s", self.address, exc)
            return False
        return True
