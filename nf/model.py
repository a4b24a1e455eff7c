"""The typed, frozen configuration the relay runs: what crosses the boundary.

These classes are the relay's view of a validated configuration (integers
and named fields, defaults applied) and the vocabulary of the boundary
between the control plane and the data plane (``nf.runtime.transaction``).
They import nothing but the standard library, so the data-plane process can
use them without loading the schema, XML or validation code
(``nf.config.model`` builds them from a tree).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SerialPortConfig:
    name: str
    device: str
    baud_rate: int
    data_bits: int
    parity: str
    stop_bits: str
    flow_control: str
    line_mode: str


@dataclass(frozen=True)
class SecondaryConfig:
    port: int
    response_mode: str
    timeout_ms: int | None


@dataclass(frozen=True)
class PackingConfig:
    max_frame_size: int | None
    frame_delay_ms: int | None
    delimiter: int | None

    @property
    def enabled(self) -> bool:
        return any(
            v is not None for v in (self.max_frame_size, self.frame_delay_ms, self.delimiter)
        )


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    enabled: bool
    serial_port: str
    mode: str
    listen_address: str | None
    listen_port: int | None
    secondary: SecondaryConfig | None
    destinations: tuple[tuple[str, int], ...]
    multicast_group: str | None
    packing: PackingConfig
    inactivity_timeout: int
    keepalive: int
    takeover: bool
    allowed_peers: tuple[str, ...]
    rfc2217: bool = False
    """Telnet with the COM-PORT-OPTION on the TCP sessions (nf.protocol.telnet)."""
    allow_line_control: bool = True


@dataclass(frozen=True)
class RelayConfig:
    serial_ports: dict[str, SerialPortConfig]
    channels: dict[str, ChannelConfig]
