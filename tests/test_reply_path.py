"""A reply on its way out (nf/northbound/server.py): framed from its pieces
in one join, and handed to paramiko without a copy per SSH packet.

A whole <get> of 1000 channels is a 1.2 MB reply.  It had been copied
whole five times on this side (joins, the rpc-reply splice, the framing)
and then once per 32 KB packet by paramiko's ``Channel.sendall``, which
slices off what each packet took; the guard below counts memory, not time.
"""

from __future__ import annotations

import socket
import threading
import tracemalloc
from collections.abc import Iterator

import paramiko
import pytest
from paramiko.common import AUTH_SUCCESSFUL, OPEN_SUCCEEDED

from nf.northbound.server import BoundedFraming, SshStream


@pytest.mark.parametrize("chunked", [True, False])
def test_a_message_in_pieces_arrives_whole_and_framed(chunked: bool) -> None:
    """``send_parts`` frames the join of its pieces (RFC 6242 chunked or
    end-of-message), as ``send`` frames the joined message."""
    left, right = socket.socketpair()
    with left, right:
        out = BoundedFraming(left, 1 << 20)
        back = BoundedFraming(right, 1 << 20)
        pieces = [b"<rpc-reply>", b"<data>", b"x" * 70_000, b"", b"</data>", b"</rpc-reply>"]
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.extend(back.receive(chunked) for _ in "ab"))
        reader.start()
        out.send_parts(pieces, chunked)
        out.send(b"<next/>", chunked)
        reader.join(30)
        assert got == [b"".join(pieces), b"<next/>"]


class _Accept(paramiko.ServerInterface):
    def check_auth_none(self, username: str) -> int:
        return AUTH_SUCCESSFUL

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED


@pytest.fixture
def ssh_channels() -> Iterator[tuple[paramiko.Channel, paramiko.Channel]]:
    """A real SSH connection on a socket pair: (server's channel, client's
    channel), the client's receive window small (256 KiB) so that what is
    in flight stays small."""
    server_sock, client_sock = socket.socketpair()
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.ECDSAKey.generate(bits=256))
    server.start_server(threading.Event(), server=_Accept())  # an event: in the background
    client = paramiko.Transport(client_sock)
    try:
        client.start_client(timeout=10)
        client.auth_none("user")
        theirs = client.open_session(window_size=256 * 1024, timeout=10)
        ours = server.accept(10)
        assert ours is not None
        yield ours, theirs
    finally:
        client.close()
        server.close()


def test_a_big_reply_is_not_copied_on_its_way_out(
    ssh_channels: tuple[paramiko.Channel, paramiko.Channel],
) -> None:
    """An 8 MB piece of a reply, framed and sent over SSH, allocates no
    more than a few packets' worth at a time: the framing does not join
    big pieces, and paramiko's own ``sendall`` on bytes would copy what is
    left after every 32 KB packet (its first copy alone is the whole
    message less one packet)."""
    ours, theirs = ssh_channels
    pieces = [b"<rpc-reply>", b"z" * (8 << 20), b"</rpc-reply>"]
    size = sum(map(len, pieces))
    framed = len(b"\n#%d\n" % size) + size + len(b"\n##\n")
    received = [0, 0]  # bytes, of which b"z"

    def read() -> None:
        while received[0] < framed:
            data = theirs.recv(1 << 16)
            if not data:
                return
            received[0] += len(data)
            received[1] += data.count(b"z")

    reader = threading.Thread(target=read)
    reader.start()
    tracemalloc.start()
    try:
        BoundedFraming(SshStream(ours), 1 << 20).send_parts(pieces, True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reader.join(30)
    assert received == [framed, 8 << 20]
    assert peak < (8 << 20) // 8, f"{peak} bytes allocated at once"
