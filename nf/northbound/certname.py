"""The certificate-to-name map of NETCONF over TLS (RFC 7589 §7, ietf-x509-cert-to-name).

Pure: no I/O.  A TLS client is a NETCONF user when an entry of the map
matches a certificate of its chain, by fingerprint, and the entry's
map-type gives a name:

- the entries are tried in ascending ``id``;
- an entry's ``fingerprint`` (the ``tls-fingerprint`` type of RFC 6991's
  ietf-crypto-types ancestor, as ietf-x509-cert-to-name uses it: one octet
  naming the hash algorithm of the TLS 1.2 HashAlgorithm registry, then
  the hash, in colon-separated hex, e.g. ``04:a1:...`` for SHA-256) matches
  the client's own certificate or one of the CA certificates that issued
  it;
- ``specified`` gives the entry's ``name``; ``san-rfc822-name`` the first
  rfc822Name (e-mail) subjectAltName of the client's certificate;
  ``common-name`` the last CN of its subject.  An entry whose map-type
  finds nothing (no such SAN) is passed over, and the next one is tried;
- no entry gives a name: the client is refused.

The name is the NETCONF username: NACM (``/nacm/groups``) and
ietf-netconf-monitoring see it as they see an SSH login.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

MapType = Literal["specified", "san-rfc822-name", "common-name"]
MAP_TYPES: tuple[MapType, ...] = ("specified", "san-rfc822-name", "common-name")

HASH_ALGORITHMS = {1: "md5", 2: "sha1", 3: "sha224", 4: "sha256", 5: "sha384", 6: "sha512"}
"""The TLS 1.2 HashAlgorithm registry (RFC 5246 §7.4.1.4.1), as the first
octet of a tls-fingerprint names them."""


@dataclass(frozen=True)
class Fingerprint:
    """A certificate's tls-fingerprint: hash algorithm and hash of its DER."""

    algorithm: int
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """ValueError naming what is wrong when ``text`` is not one."""
        parts = text.strip().split(":")
        try:
            octets = bytes(int(part, 16) for part in parts if len(part) == 2)
        except ValueError:
            octets = b""
        if len(octets) != len(parts) or len(octets) < 2:
            raise ValueError(
                f"not a tls-fingerprint (colon-separated hex octets, e.g. 04:ab:...): {text!r}"
            )
        algorithm, digest = octets[0], octets[1:]
        name = HASH_ALGORITHMS.get(algorithm)
        if name is None:
            raise ValueError(
                f"tls-fingerprint {text[:8]!r}...: hash algorithm {algorithm} is not one of "
                + ", ".join(f"{k} ({v})" for k, v in HASH_ALGORITHMS.items())
            )
        size = hashlib.new(name).digest_size
        if len(digest) != size:
            raise ValueError(
                f"tls-fingerprint {text[:8]!r}...: a {name} hash has {size} octets, "
                f"not {len(digest)}"
            )
        return cls(algorithm, digest)

    @classmethod
    def of(cls, der: bytes, algorithm: int = 4) -> Fingerprint:
        """The fingerprint of a DER certificate (SHA-256 by default)."""
        return cls(algorithm, hashlib.new(HASH_ALGORITHMS[algorithm], der).digest())

    def matches(self, der: bytes) -> bool:
        return hashlib.new(HASH_ALGORITHMS[self.algorithm], der).digest() == self.digest

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in bytes([self.algorithm]) + self.digest)


@dataclass(frozen=True)
class Entry:
    """One cert-to-name entry."""

    id: int
    fingerprint: Fingerprint
    map_type: MapType
    name: str | None = None
    """The user name of a ``specified`` entry (and only of one)."""

    def __post_init__(self) -> None:
        if self.map_type not in MAP_TYPES:
            raise ValueError(f"map-type {self.map_type!r} is not one of {', '.join(MAP_TYPES)}")
        if (self.map_type == "specified") != bool(self.name):
            raise ValueError(
                "map-type specified needs a name"
                if self.map_type == "specified"
                else f"map-type {self.map_type} takes its name from the certificate: no name"
            )


def _rfc822_name(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    names = san.get_values_for_type(x509.RFC822Name)
    return names[0] if names else None


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[-1].value
    return value if isinstance(value, str) else value.decode(errors="replace")


def map_to_name(entries: Iterable[Entry], chain: Sequence[x509.Certificate]) -> str | None:
    """The user name of a client whose certificate chain is ``chain``
    (the client's certificate first, then its issuers), or None."""
    if not chain:
        return None
    ders = [cert.public_bytes(serialization.Encoding.DER) for cert in chain]
    client = chain[0]
    for entry in sorted(entries, key=lambda e: e.id):
        if not any(entry.fingerprint.matches(der) for der in ders):
            continue
        if entry.map_type == "specified":
            name = entry.name
        elif entry.map_type == "san-rfc822-name":
            name = _rfc822_name(client)
        else:
            name = _common_name(client)
        if name:
            return name
    return None


def issuers(
    client: x509.Certificate, anchors: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """The chain of ``client`` through ``anchors`` (the certificates the
    server trusts for clients), client first: each next certificate is the
    one among ``anchors`` that signed the one before.  TLS has verified the
    chain already; this only finds which of the trusted certificates it
    went through, for fingerprints of an issuing CA to match.  Python's ssl
    (3.11) gives the peer's certificate alone, so an intermediate CA that
    the client sends but the server does not hold cannot be matched."""
    chain = [client]
    current = client
    while len(chain) <= len(anchors) and current.subject != current.issuer:
        issuer = next((a for a in anchors if _issued(current, a)), None)
        if issuer is None or issuer in chain:
            break
        chain.append(issuer)
        current = issuer
    return chain


def _issued(cert: x509.Certificate, by: x509.Certificate) -> bool:
    if by.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(by)
    except Exception:  # InvalidSignature, ValueError, TypeError (unsupported key)
        return False
    return True
