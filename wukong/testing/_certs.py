"""Throwaway PKI for the local control plane: CAs, serving and client certificates, SA keys."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# ECDSA P-256 rather than RSA: key generation takes microseconds instead of ~100 ms each,
# and kube-apiserver, etcd clients and OpenSSL all accept it.
_CURVE = ec.SECP256R1()
_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key, as written to disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class _Authority:
    """A CA held in memory so it can sign leaves."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    files: KeyPair


@dataclass(frozen=True)
class Pki:
    """Every file kube-apiserver and its clients need, under one directory."""

    serving_ca: Path
    serving: KeyPair
    client_ca: Path
    admin: KeyPair
    front_proxy_ca: Path
    front_proxy_client: KeyPair
    service_account: KeyPair  # cert = public key PEM, key = private key PEM


def write_pki(directory: Path) -> Pki:
    """Generate a fresh PKI into `directory` (files readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    serving_ca = _authority(directory, "serving-ca", "wukong-serving-ca")
    client_ca = _authority(directory, "client-ca", "wukong-client-ca")
    front_proxy_ca = _authority(directory, "front-proxy-ca", "wukong-front-proxy-ca")
    serving = _leaf(
        directory,
        "apiserver",
        serving_ca,
        common_name="kube-apiserver",
        organization=None,
        server=True,
    )
    admin = _leaf(directory, "admin", client_ca, common_name="admin", organization="system:masters")
    front_proxy_client = _leaf(
        directory, "front-proxy-client", front_proxy_ca, common_name="front-proxy-client"
    )
    return Pki(
        serving_ca=serving_ca.files.cert,
        serving=serving,
        client_ca=client_ca.files.cert,
        admin=admin,
        front_proxy_ca=front_proxy_ca.files.cert,
        front_proxy_client=front_proxy_client,
        service_account=_service_account_keys(directory),
    )


def _authority(directory: Path, stem: str, common_name: str) -> _Authority:
    key = ec.generate_private_key(_CURVE)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(key, cert, _write(directory, stem, cert, key))


def _leaf(
    directory: Path,
    stem: str,
    ca: _Authority,
    *,
    common_name: str,
    organization: str | None = None,
    server: bool = False,
    dns_names: tuple[str, ...] = ("kubernetes.default.svc",),
) -> KeyPair:
    key = ec.generate_private_key(_CURVE)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(x509.Name(attributes), ca.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        # Clients dial 127.0.0.1 or localhost; the in-cluster name serves the aggregator's SNI.
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            *(x509.DNSName(name) for name in dns_names),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(directory, stem, builder.sign(ca.key, hashes.SHA256()), key)


def _service_account_keys(directory: Path) -> KeyPair:
    key = ec.generate_private_key(_CURVE)
    public = directory / "sa-signer.pub"
    private = directory / "sa-signer.key"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _write_private(private, key)
    return KeyPair(public, private)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    # Backdated a little so a skewed clock in a container never sees a "not yet valid" cert.
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> KeyPair:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, key)
    return KeyPair(cert_path, key_path)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass(frozen=True)
class KubeVirtPki:
    """KubeVirt's own CA and the certificates virt-operator would issue from it."""

    ca: Path  # the `kubevirt-ca` ConfigMap's ca-bundle; webhooks and APIServices trust it
    virt_api: KeyPair  # virt-api's serving certificate (webhooks, aggregated API)
    virt_api_client: KeyPair  # virt-api's client certificate towards virt-handler
    handler: KeyPair  # virt-handler's serving certificate (CN checked by virt-api)
    controller: KeyPair  # virt-controller's metrics endpoint


def write_kubevirt_pki(directory: Path, namespace: str) -> KubeVirtPki:
    """A KubeVirt CA and leaves with the common names KubeVirt's TLS code verifies."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _authority(directory, "kubevirt-ca", "kubevirt.io")
    services = tuple(f"{s}.{namespace}.svc" for s in ("virt-api", "virt-controller"))
    return KubeVirtPki(
        ca=ca.files.cert,
        virt_api=_leaf(
            directory, "virt-api", ca, common_name="virt-api", server=True, dns_names=services
        ),
        # pkg/util/tls verifyPeerCert: "kubevirt.io:system:<client|node>:<component>".
        virt_api_client=_leaf(
            directory, "virt-api-client", ca, common_name="kubevirt.io:system:client:virt-handler"
        ),
        handler=_leaf(
            directory,
            "virt-handler",
            ca,
            common_name="kubevirt.io:system:node:virt-handler",
            server=True,
            dns_names=(),
        ),
        controller=_leaf(
            directory,
            "virt-controller",
            ca,
            common_name="virt-controller",
            server=True,
            dns_names=services,
        ),
    )
