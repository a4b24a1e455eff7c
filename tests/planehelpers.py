"""Helpers for the plane tests: the data plane as a real child process on a
Unix socket, a RemoteRuntime around a scenario, and typed configurations."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from nf.model import ChannelConfig, PackingConfig, RelayConfig, SerialPortConfig
from nf.plane.remote import RemoteRuntime
from nf.runtime.transaction import Delta, EventSink

T = TypeVar("T")

FORBIDDEN = ("lxml", "paramiko", "pyang", "ncclient", "netconf")
FORBIDDEN_NF = ("nf.config", "nf.northbound", "nf.schema")


def forbidden(modules: list[str] | tuple[str, ...]) -> list[str]:
    """The modules of the control plane among ``modules`` (none may be in a
    data-plane process)."""
    return sorted(
        m
        for m in modules
        if m.split(".")[0] in FORBIDDEN
        or any(m == nf or m.startswith(nf + ".") for nf in FORBIDDEN_NF)
    )


@dataclass
class DataPlaneProcess:
    proc: subprocess.Popen[bytes]
    socket: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), f"the data plane exited:\n{self.log()}"
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.socket))
                    return
                except OSError:
                    pass
            assert time.monotonic() < deadline, f"the data plane is not listening:\n{self.log()}"
            time.sleep(0.02)


@dataclass
class Planes:
    """Data-plane processes of one test, all on one socket path in a short
    directory (an AF_UNIX path has at most 107 bytes); all killed at the
    end, their logs printed (pytest shows them when the test failed)."""

    directory: Path
    started: list[DataPlaneProcess] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.directory / "dataplane.sock"

    def start(self, wait: bool = True) -> DataPlaneProcess:
        log_path = self.directory / f"dataplane{len(self.started)}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nf.plane.dataplane", "--socket", str(self.socket)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = DataPlaneProcess(proc, self.socket, log_path)
        self.started.append(process)
        if wait:
            process.wait_listening()
        return process

    def close(self) -> None:
        for process in self.started:
            if process.alive():
                process.kill()
            print(f"--- data plane {process.pid} log:\n{process.log()}")


@contextlib.contextmanager
def open_planes() -> Iterator[Planes]:
    """Planes for one test (its fixture)."""
    directory = Path(tempfile.mkdtemp(prefix="nfp", dir="/tmp"))
    os.chmod(directory, 0o700)
    planes = Planes(directory)
    try:
        yield planes
    finally:
        planes.close()
        shutil.rmtree(directory, ignore_errors=True)


def with_remote(
    path: Path,
    scenario: Callable[[RemoteRuntime], Awaitable[T]],
    sink: EventSink | None = None,
    **options: Any,
) -> T:
    """Run ``scenario`` with a connected RemoteRuntime on a fresh event loop;
    ``sink`` gets every event from the connection on."""

    async def main() -> T:
        remote = RemoteRuntime(path, **options)
        if sink is not None:
            remote.add_event_sink(sink)
        async with anyio.create_task_group() as tg:
            await tg.start(remote.run)
            try:
                return await scenario(remote)
            finally:
                tg.cancel_scope.cancel()

    return anyio.run(main)


async def blocking(func: Callable[..., T], *args: Any) -> T:
    """A blocking helper (socket or pty I/O) off the event loop."""
    return await anyio.to_thread.run_sync(func, *args)


def serial_port(name: str, device: str) -> SerialPortConfig:
    return SerialPortConfig(name, device, 115200, 8, "none", "1", "none", "rs232")


def server_channel(name: str, port: str, tcp: int) -> ChannelConfig:
    return ChannelConfig(
        name=name,
        enabled=True,
        serial_port=port,
        mode="server",
        listen_address="127.0.0.1",
        listen_port=tcp,
        secondary=None,
        destinations=(),
        multicast_group=None,
        packing=PackingConfig(None, None, None),
        inactivity_timeout=0,
        keepalive=0,
        takeover=False,
        allowed_peers=(),
    )


def one_channel(device: str, tcp: int, name: str = "c", port: str = "p") -> Delta:
    """A Delta that adds one serial port and a TCP server channel on it."""
    return Delta({port: serial_port(port, device)}, {name: server_channel(name, port, tcp)})


EMPTY = RelayConfig({}, {})
