"""Certificates and keys for one lab cluster, made with `cryptography` (no openssl CLI needed).

Layout mirrors kubeadm's so the flags read familiarly: ca.crt/key, apiserver.crt/key,
front-proxy-ca and front-proxy-client, sa.key/sa.pub, and one client cert per identity.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = datetime.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_ca(directory: Path, stem: str, cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_cert(directory / f"{stem}.crt", cert)
    _write_key(directory / f"{stem}.key", key)
    return cert, key


def make_leaf(
    directory: Path,
    stem: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    org: str | None = None,
    server: bool = False,
    sans: tuple[str, ...] = (),
    expired: bool = False,
) -> None:
    """A certificate signed by ``ca`` (``expired``: one whose validity ended an hour ago)."""
    ca_cert, ca_key = ca
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + _VALID
    if expired:
        start, end = now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if sans:
        names: list[x509.GeneralName] = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write_cert(directory / f"{stem}.crt", builder.sign(ca_key, hashes.SHA256()))
    _write_key(directory / f"{stem}.key", key)


SERVER_SANS = (
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
)

CLIENTS = {
    # stem: (common name, organisation)
    "admin": ("lab-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    # An identity the cluster's CA signed but no RBAC grants: the e2e tests present it where
    # only Spillover's own CA is trusted (Spillover itself runs with a ServiceAccount token).
    "spillover": ("spillover", None),
}


def make_cluster_pki(directory: Path) -> None:
    """Everything one cluster needs; idempotent per directory (skips when already complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "complete").exists():
        return
    ca = make_ca(directory, "ca", "spillover-lab-ca")
    make_leaf(directory, "apiserver", ca, "kube-apiserver", server=True, sans=SERVER_SANS)
    make_leaf(directory, "serving", ca, "spillover-lab-serving", server=True, sans=SERVER_SANS)
    for stem, (cn, org) in CLIENTS.items():
        make_leaf(directory, stem, ca, cn, org)
    # kube-apiserver's client certificate for kubelets (kubeadm's apiserver-kubelet-client): it
    # reads pod logs from kwok's nodes and from Spillover's virtual nodes with it.
    make_leaf(directory, "apiserver-kubelet-client", ca, "kube-apiserver-kubelet-client", "system:masters")
    front = make_ca(directory, "front-proxy-ca", "front-proxy-ca")
    make_leaf(directory, "front-proxy-client", front, "front-proxy-client")
    sa = _key()
    _write_key(directory / "sa.key", sa)
    (directory / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (directory / "complete").write_text("ok\n")
