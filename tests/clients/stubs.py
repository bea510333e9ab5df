"""Tiny local servers that answer as a script says (refusals first, then a fixed answer),
recording what each call carried; optionally over TLS with a throwaway certificate."""
from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bet_client.gen.bet.v1 import inference_pb2 as pb
from bet_client.gen.bet.v1 import inference_pb2_grpc as pb_grpc

ANSWER = {"prediction": "positive", "label_id": 1, "confidence": 0.9,
          "probabilities": {"negative": 0.1, "positive": 0.9}, "model_version": "stub"}


class Script:
    """What a stub answers, call after call: (HTTP status or gRPC code, retry-after seconds
    or None) for each refusal, then ANSWER. `headers` holds each call's headers/metadata."""

    def __init__(self) -> None:
        self.refusals: list[tuple[Any, float | None]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.headers)

    def next(self, headers: dict[str, str]) -> tuple[Any, float | None] | None:
        with self.lock:
            self.headers.append(headers)
            return self.refusals.pop(0) if self.refusals else None


@dataclass(frozen=True)
class Tls:
    cert: Path  # PEM; also the CA a client trusts
    key: Path


def self_signed(folder: Path) -> Tls:
    """A certificate for 127.0.0.1 and localhost, signed by its own key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tls = Tls(folder / "cert.pem", folder / "key.pem")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return tls


@contextmanager
def rest_stub(tls: Tls | None = None) -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            refusal = script.next({k.lower(): v for k, v in self.headers.items()})
            status, retry_after = refusal or (200, None)
            data = json.dumps(ANSWER if status == 200 else {"detail": f"refused with {status}"}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if retry_after is not None:
                self.send_header("retry-after", str(retry_after))
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def _refuse(context: grpc.ServicerContext, code: grpc.StatusCode, retry_after: float | None) -> None:
    details = []
    if retry_after is not None:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=int(retry_after), nanos=int(retry_after % 1 * 1e9))))
        details.append(packed)
    context.abort_with_status(rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=f"refused with {code.name}", details=details)))


@contextmanager
def grpc_stub(tls: Tls | None = None) -> Iterator[tuple[str, Script]]:
    script = Script()

    class Servicer(pb_grpc.InferenceServicer):
        def Predict(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
            refusal = script.next(dict(context.invocation_metadata()))
            if refusal is not None:
                _refuse(context, *refusal)
            return pb.PredictResponse(**ANSWER)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_InferenceServicer_to_server(Servicer(), server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}", script
    finally:
        server.stop(None)
