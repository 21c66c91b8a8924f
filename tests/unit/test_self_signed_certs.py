"""hack/install/self-signed-certs (the install without cert-manager) signs what the manifests
expect: serving certificates for the Service's names (and the extender's fixed IP), a client
certificate named as --extender-client-names says, all from one CA; --renew rotates them."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "install" / "self-signed-certs"


def run(folder: Path, *args: str) -> str:
    out = subprocess.run(
        [str(SCRIPT), "--dir", str(folder), "--files-only", *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def load(folder: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / f"{name}.crt").read_bytes())


def test_extender_mode_signs_the_serving_and_client_certificates_from_one_ca(tmp_path: Path) -> None:
    run(tmp_path, "--mode", "extender", "--san", "127.0.0.1")
    ca = load(tmp_path, "ca")
    for name in ("webhook", "extender", "client"):
        cert = load(tmp_path, name)
        cert.verify_directly_issued_by(ca)
        assert (tmp_path / f"{name}.key").stat().st_mode & 0o077 == 0, "keys readable by their owner only"
    extender = load(tmp_path, "extender")
    sans = extender.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spillover.spillover-system.svc" in sans.get_values_for_type(x509.DNSName)
    assert {ipaddress.ip_address("10.96.0.88"), ipaddress.ip_address("127.0.0.1")} <= set(
        sans.get_values_for_type(x509.IPAddress)
    )
    client = load(tmp_path, "client")
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-scheduler"
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_valid_certificates_are_kept_and_renew_signs_new_ones_from_the_same_ca(tmp_path: Path) -> None:
    run(tmp_path)
    first = load(tmp_path, "webhook").serial_number
    assert "kept" in run(tmp_path)
    assert load(tmp_path, "webhook").serial_number == first
    run(tmp_path, "--renew")
    renewed = load(tmp_path, "webhook")
    assert renewed.serial_number != first
    renewed.verify_directly_issued_by(load(tmp_path, "ca"))
    assert not (tmp_path / "client.crt").exists(), "the own-scheduler mode needs no client certificate"
