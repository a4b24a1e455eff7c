"""The transport file (``nf run --transport-config FILE``): TLS and call home.

A TOML file, read when the control plane starts (a restarted control plane
reads it again, so a renewed certificate is taken up by a restart)::

    [tls]                                   # NETCONF over TLS (RFC 7589)
    certificate = "server.crt"              # PEM: the server's certificate (and chain)
    private-key = "server.key"              # PEM, unencrypted, mode 0600 or stricter
    client-ca = "clients-ca.pem"            # PEM: the CAs (or self-signed client
                                            # certificates) trusted for clients

    [[tls.cert-to-name]]                    # ietf-x509-cert-to-name, tried by id
    id = 1
    fingerprint = "04:2b:...:9c"            # the client's or an issuing CA's
    map-type = "specified"                  # or san-rfc822-name, common-name
    name = "alice"                          # specified only

    [[call-home]]                           # RFC 8071: the daemon dials out
    name = "nms"
    transport = "ssh"                       # or "tls"
    host = "192.0.2.10"
    port = 4334                             # default 4334 (ssh), 4335 (tls)
    connection = "persistent"               # or "periodic"
    period = 3600                           # periodic: seconds between connections
    reconnect-max = 30                      # persistent: longest wait between attempts

Relative paths are relative to the file's directory.  Why a file and not
YANG configuration in the datastores: the credentials a manager uses to
reach the device are bootstrap data, like ``users.json`` and the SSH host
key (which ``nf user`` manages, not NETCONF); an edit of running must never
be able to cut every manager off; and the TLS listener, like the SSH one, is
bound by the supervisor before any control plane runs (so that it outlives
control-plane restarts), which a commit could not move.  The IETF
netconf-server modules (ietf-netconf-server, ietf-tls-server, keystore,
truststore: some twenty modules) would be the standard form of the same
data; this file keeps their names (cert-to-name, map-type, fingerprint,
persistent, periodic, period) so that moving to them later maps one to one.

Every error is a ValueError that names the file and the entry.  Nothing of a
key is ever read here beyond its permissions: tls.server_context loads it.
"""

from __future__ import annotations

import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from nf.northbound.certname import MAP_TYPES, Entry, Fingerprint

SSH_CALL_HOME_PORT = 4334
TLS_CALL_HOME_PORT = 4335
"""RFC 8071 §6: the managers' ports for call home over SSH and TLS."""
DEFAULT_PERIOD = 3600.0
DEFAULT_RECONNECT_MAX = 30.0


@dataclass(frozen=True)
class TlsSettings:
    certificate: Path
    private_key: Path
    client_ca: Path
    cert_to_name: tuple[Entry, ...]


@dataclass(frozen=True)
class CallHome:
    """One manager the daemon connects to."""

    name: str
    transport: Literal["ssh", "tls"]
    host: str
    port: int
    connection: Literal["persistent", "periodic"] = "persistent"
    period: float = DEFAULT_PERIOD
    reconnect_max: float = DEFAULT_RECONNECT_MAX

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"call home {self.name!r} ({self.transport} to {host}:{self.port})"


@dataclass(frozen=True)
class Transports:
    tls: TlsSettings | None = None
    call_home: tuple[CallHome, ...] = ()


def check_private_key(path: Path) -> None:
    """ValueError unless ``path`` is a regular file that only its owner
    may read or write (as OpenSSH demands of its keys): a key others can
    read is a key others may have."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ValueError(f"private key {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"private key {path}: not a regular file")
    if st.st_mode & 0o077:
        raise ValueError(
            f"private key {path} is readable or writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); refused: chmod 600 {path}"
        )


def _table(data: object, what: str) -> dict[str, object]:
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a table")
    return cast(dict[str, object], data)


def _keys(table: dict[str, object], allowed: set[str], what: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(
            f"{what}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )


def _text(table: dict[str, object], key: str, what: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: {key} must be a non-empty string")
    return value


def _number(table: dict[str, object], key: str, what: str, default: float, low: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ValueError(f"{what}: {key} must be a number of seconds >= {low:g}")
    return float(value)


def _tls(data: object, base: Path) -> TlsSettings:
    table = _table(data, "[tls]")
    _keys(table, {"certificate", "private-key", "client-ca", "cert-to-name"}, "[tls]")
    paths = {
        k: base / _text(table, k, "[tls]") for k in ("certificate", "private-key", "client-ca")
    }
    check_private_key(paths["private-key"])
    raw = table.get("cert-to-name", [])
    if not isinstance(raw, list) or not raw:
        raise ValueError("[tls]: at least one [[tls.cert-to-name]] entry is needed")
    entries: list[Entry] = []
    for index, item in enumerate(raw, 1):
        what = f"[[tls.cert-to-name]] #{index}"
        entry = _table(item, what)
        _keys(entry, {"id", "fingerprint", "map-type", "name"}, what)
        ident = entry.get("id")
        if isinstance(ident, bool) or not isinstance(ident, int) or not 1 <= ident <= 2**32 - 1:
            raise ValueError(f"{what}: id must be an integer 1..4294967295")
        if any(e.id == ident for e in entries):
            raise ValueError(f"{what}: id {ident} is used twice")
        map_type = _text(entry, "map-type", what)
        if map_type not in MAP_TYPES:
            raise ValueError(f"{what}: map-type {map_type!r} is not one of {', '.join(MAP_TYPES)}")
        name = entry.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{what}: name must be a non-empty string")
        try:
            fingerprint = Fingerprint.parse(_text(entry, "fingerprint", what))
            entries.append(Entry(ident, fingerprint, map_type, name))
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from exc
    return TlsSettings(
        paths["certificate"], paths["private-key"], paths["client-ca"], tuple(entries)
    )


def _call_home(data: object, index: int, names: set[str]) -> CallHome:
    what = f"[[call-home]] #{index}"
    table = _table(data, what)
    allowed = {"name", "transport", "host", "port", "connection", "period", "reconnect-max"}
    _keys(table, allowed, what)
    name = _text(table, "name", what)
    if name in names:
        raise ValueError(f"{what}: name {name!r} is used twice")
    what = f"[[call-home]] {name!r}"
    transport = _text(table, "transport", what)
    if transport not in ("ssh", "tls"):
        raise ValueError(f"{what}: transport must be ssh or tls, not {transport!r}")
    default_port = SSH_CALL_HOME_PORT if transport == "ssh" else TLS_CALL_HOME_PORT
    port = table.get("port", default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{what}: port must be an integer 1..65535")
    connection = _text(table, "connection", what, "persistent")
    if connection not in ("persistent", "periodic"):
        raise ValueError(f"{what}: connection must be persistent or periodic, not {connection!r}")
    return CallHome(
        name,
        cast(Literal["ssh", "tls"], transport),
        _text(table, "host", what),
        port,
        cast(Literal["persistent", "periodic"], connection),
        _number(table, "period", what, DEFAULT_PERIOD, 1.0),
        _number(table, "reconnect-max", what, DEFAULT_RECONNECT_MAX, 1.0),
    )


def load(path: Path) -> Transports:
    """The transport file, checked; ValueError naming the file and the
    entry otherwise (a missing file, a key file others may read)."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not TOML: {exc}") from exc
    base = path.absolute().parent
    try:
        _keys(data, {"tls", "call-home"}, "the file")
        tls = _tls(data["tls"], base) if "tls" in data else None
        raw = data.get("call-home", [])
        if not isinstance(raw, list):
            raise ValueError("call-home must be an array of tables ([[call-home]])")
        calls: list[CallHome] = []
        for index, item in enumerate(raw, 1):
            calls.append(_call_home(item, index, {c.name for c in calls}))
        if tls is None and any(c.transport == "tls" for c in calls):
            raise ValueError("call home over TLS needs the [tls] table (certificate, key, map)")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return Transports(tls, tuple(calls))
