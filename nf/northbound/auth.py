"""NETCONF users: scrypt-hashed passwords and SSH public keys, and the host key.

There is no fixed default password.  On first start the daemon creates the
``admin`` user with a random password, stores only its scrypt hash and
prints the password once, when the daemon is up (``nf user passwd admin``
resets it); ``NF_ADMIN_PASSWORD`` sets it without a prompt,
for automation and tests.  Failures are logged here with the user and
address, and the client learns nothing beyond "denied".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import paramiko

log = logging.getLogger(__name__)

ADMIN = "admin"
USERS_FILE = "users.json"
HOST_KEY_FILE = "ssh_host_ecdsa_key"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """16 MiB of work memory (128 * r * n bytes): see nf.heap for how it is
    kept from staying resident."""
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, n=n, r=r, p=p)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt$n$r$p$salt$hash, all base64: the only form a password is stored in."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, **_SCRYPT)
    enc = base64.b64encode
    return "scrypt${n}${r}${p}${s}${h}".format(
        s=enc(salt).decode(), h=enc(digest).decode(), **_SCRYPT
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


@dataclass
class User:
    name: str
    password_hash: str | None = None
    authorized_keys: list[str] = field(default_factory=list)
    """OpenSSH public key lines: "ssh-ed25519 AAAA... comment"."""


class Users:
    """The user database in ``state_dir/users.json`` (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.users: dict[str, User] = {}
        self._mtime: int | None = None
        self._load()

    def _load(self) -> None:
        """(Re)read the file; ``nf user`` edits it while the daemon runs."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        raw = json.loads(self.path.read_text(encoding="utf-8"))
        self.users = {
            name: User(name, entry.get("password"), list(entry.get("authorized_keys", [])))
            for name, entry in raw.get("users", {}).items()
        }
        self._mtime = mtime

    def save(self) -> None:
        data = {
            "users": {
                u.name: {"password": u.password_hash, "authorized_keys": u.authorized_keys}
                for u in self.users.values()
            }
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime_ns

    def set_password(self, name: str, password: str) -> None:
        with self._lock:
            user = self.users.setdefault(name, User(name))
            user.password_hash = hash_password(password)

    def add_key(self, name: str, key_line: str) -> None:
        with self._lock:
            user = self.users.setdefault(name, User(name))
            if key_line not in user.authorized_keys:
                user.authorized_keys.append(key_line)

    def remove(self, name: str) -> bool:
        with self._lock:
            return self.users.pop(name, None) is not None

    def check_password(self, name: str, password: str) -> bool:
        with self._lock:
            self._load()
        user = self.users.get(name)
        if user is None or user.password_hash is None:
            # spend the same time as a real check: no user enumeration by timing
            verify_password(password, _DUMMY_HASH)
            return False
        return verify_password(password, user.password_hash)

    def check_key(self, name: str, key: paramiko.PKey) -> bool:
        with self._lock:
            self._load()
        user = self.users.get(name)
        if user is None:
            return False
        offered = key.get_base64()
        for line in user.authorized_keys:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == key.get_name() and parts[1] == offered:
                return True
        return False


_DUMMY_HASH = (
    "scrypt$16384$8$1$MDAwMDAwMDAwMDAwMDAwMA==$98YadS4IAQ3tnED1USC8nvTmrFlZfPCIcHRhksRaIFI="
)
"""hash_password("not a password", salt=b"0" * 16), written out: computing it
at import cost every ``nf`` command a scrypt (0.15 s) before it could fail."""


@dataclass(frozen=True)
class AdminPassword:
    """Where the admin password of this start comes from."""

    source: Literal["generated", "environment", "kept"]
    generated: str | None = None
    """The new password, to print once (``source == "generated"``)."""

    @property
    def changed(self) -> bool:
        """users.json must be saved for it to count."""
        return self.source != "kept"


def ensure_admin(users: Users, environ: dict[str, str]) -> AdminPassword:
    """Make sure an admin can log in: set the password of NF_ADMIN_PASSWORD,
    or generate one if admin has neither password nor key.  Only ``users``
    in memory changes: the caller saves it once the daemon can start, then
    prints the generated password, so a boot that fails neither stores a
    password nobody saw nor shows one that was not stored."""
    wanted = environ.get("NF_ADMIN_PASSWORD")
    if wanted:
        users.set_password(ADMIN, wanted)
        return AdminPassword("environment")
    admin = users.users.get(ADMIN)
    if admin is not None and (admin.password_hash or admin.authorized_keys):
        return AdminPassword("kept")
    generated = secrets.token_urlsafe(12)
    users.set_password(ADMIN, generated)
    return AdminPassword("generated", generated)


def load_host_key(state_dir: Path) -> paramiko.PKey:
    """The SSH host key, generated on first start and kept (mode 0600).
    One that group or others may read or write is refused (PermissionError),
    as OpenSSH refuses such keys: a key others can read is not this host's."""
    path = state_dir / HOST_KEY_FILE
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermissionError(
                f"readable or writable by group or others (mode {mode:04o}); refused: "
                f"chmod 600 {path}"
            )
        return paramiko.ECDSAKey(filename=str(path))
    key = paramiko.ECDSAKey.generate(bits=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    key.write_private_key_file(str(path))
    log.info("generated SSH host key %s", path)
    return key
