"""X.509 certificates made in the test (cryptography): a CA, the server's
certificate, clients' certificates, expired ones; PEM files with keys at
mode 0600, and the transport file that names them."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nf.northbound.certname import Fingerprint

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def fingerprint(self, algorithm: int = 4) -> str:
        return str(Fingerprint.of(self.der, algorithm))

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue(
    directory: Path,
    name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    email: str | None = None,
    server: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A certificate for CN ``name`` signed by ``issuer`` (None: self-signed),
    written to DIRECTORY/NAME.crt and NAME.key (0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    names: list[x509.GeneralName] = []
    if email:
        names.append(x509.RFC822Name(email))
    if server:
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    issued = Issued(cert, key, directory / f"{name}.crt", directory / f"{name}.key")
    issued.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(issued.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(issued.key_pem)
    return issued


@dataclass
class Pki:
    """A CA for clients, one for the server, the server's certificate."""

    directory: Path
    ca: Issued
    server_ca: Issued
    server: Issued

    @classmethod
    def make(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca = issue(directory, "clients-ca", ca=True)
        server_ca = issue(directory, "server-ca", ca=True)
        server = issue(directory, "device", server_ca, server=True)
        return cls(directory, ca, server_ca, server)

    def client(self, name: str, **kwargs: object) -> Issued:
        return issue(self.directory, name, self.ca, **kwargs)  # type: ignore[arg-type]

    def tls_table(self, *entries: str) -> str:
        """The [tls] table of a transport file with ``entries`` (TOML
        [[tls.cert-to-name]] tables)."""
        return (
            "[tls]\n"
            f'certificate = "{self.server.cert_path}"\n'
            f'private-key = "{self.server.key_path}"\n'
            f'client-ca = "{self.ca.cert_path}"\n' + "".join(entries)
        )


def entry(ident: int, fingerprint: str, map_type: str, name: str | None = None) -> str:
    text = (
        f'\n[[tls.cert-to-name]]\nid = {ident}\nfingerprint = "{fingerprint}"\n'
        f'map-type = "{map_type}"\n'
    )
    return text + (f'name = "{name}"\n' if name else "")


def client_context(pki: Pki, client: Issued) -> ssl.SSLContext:
    """What a manager uses: its certificate, the server's CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(client.cert_path, client.key_path)
    ctx.load_verify_locations(cafile=pki.server_ca.cert_path)
    ctx.check_hostname = False
    return ctx
