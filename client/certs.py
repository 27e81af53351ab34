"""``strom certs <dir>``: a cluster CA and a certificate for each host, for internal mutual TLS.

Made with the ``cryptography`` package (no ``openssl`` command needed): an EC P-256 CA valid
for ten years, and for each host of ``conf/masters`` and ``conf/slaves`` (and for clients) a
certificate it signed, whose common name is the host (the identity the JobManager records for
a TaskManager) and whose subject alternative names are
:data:`strom.rpc.tls.INTERNAL_SERVER_NAME`, the host, ``localhost`` and its roles
(``strom:role:jobmanager`` for a host of ``conf/masters``, ``strom:role:taskmanager`` for one
of ``conf/slaves``, ``strom:role:client`` for clients; strom/rpc/roles.py says what each may
do). Private keys are written readable by their owner only. The CA's key stays in ``<dir>``
for signing more certificates later: keep it off the cluster's hosts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from strom.rpc.roles import CLIENT as CLIENT_ROLE
from strom.rpc.roles import JOBMANAGER, TASKMANAGER, role_uri
from strom.rpc.tls import CLIENT_IDENTITY, HOST_PLACEHOLDER, INTERNAL_SERVER_NAME

#: the name of the certificate for clients (bin/strom, env.execute()) in a certs folder
CLIENT = CLIENT_IDENTITY
_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class NodeFiles:
    """Where one host's certificate and key were written."""

    name: str
    certificate: Path
    private_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _subject_names(host: str, roles: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(INTERNAL_SERVER_NAME), x509.DNSName("localhost")]
    names.extend(x509.UniformResourceIdentifier(role_uri(role)) for role in sorted(set(roles)))
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        if host not in (INTERNAL_SERVER_NAME, "localhost"):
            names.append(x509.DNSName(host))
    return names


def _load_or_make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return certificate, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Strom cluster CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def make_node_certificate(folder: Path, name: str, roles: Iterable[str]) -> NodeFiles:
    """A certificate for ``name`` with ``roles`` (strom/rpc/roles.py), signed by the CA of
    ``folder`` (made there if missing)."""
    roles = list(roles)
    if not roles:
        raise ValueError(f"a certificate for {name} needs a role")
    folder.mkdir(parents=True, exist_ok=True)
    ca_certificate, ca_key = _load_or_make_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_subject_names(name, roles)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    safe = name.replace("/", "_").replace(":", "_")
    cert_path, key_path = folder / f"{safe}.pem", folder / f"{safe}.key"
    _write_key(key_path, key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return NodeFiles(name, cert_path.resolve(), key_path.resolve())


def make_cluster_certificates(
    folder: Path, masters: Iterable[str], slaves: Iterable[str], clients: Iterable[str] = ()
) -> list[NodeFiles]:
    """The CA (kept if ``folder`` has one) and a certificate for each host, with the roles of
    the lists it is in (``masters``: jobmanager, ``slaves``: taskmanager, ``clients``:
    client), and one named ``client`` for clients elsewhere."""
    roles: dict[str, set[str]] = {}
    for hosts, role in ((masters, JOBMANAGER), (slaves, TASKMANAGER), (clients, CLIENT_ROLE)):
        for host in hosts:
            roles.setdefault(host, set()).add(role)
    roles.setdefault(CLIENT, set()).add(CLIENT_ROLE)
    return [make_node_certificate(folder, name, held) for name, held in roles.items()]


def config_lines(folder: Path, node: NodeFiles | None = None) -> list[str]:
    """The lines of ``strom-conf.yaml`` that turn internal TLS on with ``node``'s files, or
    (no node) with each host's own, named by ``{host}``."""
    folder = folder.resolve()
    if node is None:
        cert, key = folder / f"{HOST_PLACEHOLDER}.pem", folder / f"{HOST_PLACEHOLDER}.key"
    else:
        cert, key = node.certificate, node.private_key
    return [
        "security.ssl.internal.enabled: true",
        f"security.ssl.internal.cert: {cert}",
        f"security.ssl.internal.key: {key}",
        f"security.ssl.internal.trust-cert: {folder / 'ca.pem'}",
    ]
