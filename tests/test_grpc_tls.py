"""TLS and mutual TLS on a Switchboard gRPC server, with certificates made here (a development CA,
a server certificate for localhost, client certificates of this CA and of a stranger's)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.api.v1 import thread_store_pb2
from switchboard.errors import InvalidArgument
from switchboard.grpc_client import open_channel
from switchboard.grpc_runtime import GrpcServer, TlsConfig
from switchboard.service_auth import METHOD_SCOPES, SCOPE_OF_METHOD, ServerAuth


@dataclass(frozen=True)
class Issued:
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(name: str) -> tuple[Issued, ec.EllipticCurvePrivateKey, x509.Name]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)), key, subject


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, common_name: str, *, server: bool) -> Issued:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    stranger: Issued  # a client certificate from another CA


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, ca_key, ca_name = _ca("switchboard development CA")
    _other, other_key, other_name = _ca("someone else's CA")
    return Pki(
        ca=ca,
        server=_leaf(ca_key, ca_name, "localhost", server=True),
        client=_leaf(ca_key, ca_name, "edge", server=False),
        stranger=_leaf(other_key, other_name, "intruder", server=False),
    )


async def _serve(tls: TlsConfig) -> GrpcServer:
    server = GrpcServer(
        name=thread_store_pb2.DESCRIPTOR.services_by_name["ThreadStore"].full_name,
        register=lambda s: None,
        auth=ServerAuth("thread_store", None, users=None, enabled=False),
        tls=tls,
    )
    await server.start("127.0.0.1", 0)
    return server


@pytest.fixture
async def tls_server(pki: Pki) -> AsyncIterator[GrpcServer]:
    server = await _serve(TlsConfig(cert=pki.server.cert, key=pki.server.key))
    yield server
    await server.stop(0)


@pytest.fixture
async def mtls_server(pki: Pki) -> AsyncIterator[GrpcServer]:
    server = await _serve(TlsConfig(cert=pki.server.cert, key=pki.server.key, ca=pki.ca.cert, mutual=True))
    yield server
    await server.stop(0)


async def _check(target: str, tls: TlsConfig) -> grpc.StatusCode:
    async with open_channel(target, tls) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError as error:
            return error.code()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


async def test_tls_serves_clients_that_trust_the_ca_and_nobody_in_plaintext(tls_server: GrpcServer, pki: Pki) -> None:
    target = f"127.0.0.1:{tls_server.port}"
    assert await _check(target, TlsConfig(ca=pki.ca.cert)) == grpc.StatusCode.OK
    assert await _check(target, TlsConfig()) == grpc.StatusCode.UNAVAILABLE  # plaintext is not spoken
    stranger_ca = _ca("another CA")[0]
    assert await _check(target, TlsConfig(ca=stranger_ca.cert)) == grpc.StatusCode.UNAVAILABLE  # not our server


async def test_mutual_tls_requires_a_client_certificate_of_the_ca(mtls_server: GrpcServer, pki: Pki) -> None:
    target = f"127.0.0.1:{mtls_server.port}"
    ours = TlsConfig(cert=pki.client.cert, key=pki.client.key, ca=pki.ca.cert, mutual=True)
    assert await _check(target, ours) == grpc.StatusCode.OK
    assert await _check(target, TlsConfig(ca=pki.ca.cert)) == grpc.StatusCode.UNAVAILABLE  # no certificate
    stranger = TlsConfig(cert=pki.stranger.cert, key=pki.stranger.key, ca=pki.ca.cert, mutual=True)
    assert await _check(target, stranger) == grpc.StatusCode.UNAVAILABLE  # a certificate of another CA


def test_tls_settings_come_from_files_and_mistakes_say_what_to_set(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, data in (("ca.pem", pki.ca.cert), ("cert.pem", pki.client.cert), ("key.pem", pki.client.key)):
        (tmp_path / name).write_bytes(data)
    monkeypatch.setenv("SWITCHBOARD_GRPC_TLS_CA", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SWITCHBOARD_GRPC_TLS_CERT", str(tmp_path / "cert.pem"))
    monkeypatch.setenv("SWITCHBOARD_GRPC_TLS_KEY", str(tmp_path / "key.pem"))
    tls = TlsConfig.from_env()
    assert tls.enabled and tls.mutual and tls.ca == pki.ca.cert  # mutual by default with a CA
    monkeypatch.setenv("SWITCHBOARD_GRPC_MTLS", "false")
    assert not TlsConfig.from_env().mutual
    monkeypatch.delenv("SWITCHBOARD_GRPC_TLS_KEY")
    with pytest.raises(InvalidArgument, match="go together"):
        TlsConfig.from_env()
    monkeypatch.setenv("SWITCHBOARD_GRPC_TLS_KEY", str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidArgument, match="cannot be read"):
        TlsConfig.from_env()


def test_every_method_of_every_service_has_a_scope() -> None:
    """A new RPC without a scope would be refused to every service identity: the table must name it."""
    from switchboard.api.v1 import agent_runner_pb2, session_api_pb2

    services = {
        "thread_store": thread_store_pb2.DESCRIPTOR.services_by_name["ThreadStore"],
        "session_api": session_api_pb2.DESCRIPTOR.services_by_name["SessionApi"],
        "agent_runner": agent_runner_pb2.DESCRIPTOR.services_by_name["AgentRunner"],
    }
    for audience, descriptor in services.items():
        assert set(METHOD_SCOPES[audience]) == {m.name for m in descriptor.methods}, audience
        for method in descriptor.methods:
            assert f"/{descriptor.full_name}/{method.name}" in SCOPE_OF_METHOD
