"""Where and how to connect: address, TLS and credentials, as each transport needs them."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

API_KEY_HEADER = "x-api-key"


@dataclass(frozen=True)
class Connection:
    address: str  # "host:port", or for REST also a URL ("https://host:port")
    tls: bool = False  # implied by an https:// address or a ca_file
    ca_file: str | Path | None = None  # PEM roots to trust instead of the system's
    token: str | None = None  # sent as `authorization: Bearer <token>`
    api_key: str | None = None  # sent as `x-api-key: <key>`

    @property
    def secure(self) -> bool:
        return self.tls or self.ca_file is not None or self.address.startswith("https://")

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if self.api_key:
            headers[API_KEY_HEADER] = self.api_key
        return headers

    def base_url(self) -> str:
        if "://" in self.address:
            return self.address.rstrip("/")
        return f"{'https' if self.secure else 'http'}://{self.address}"

    def ws_url(self, path: str) -> str:
        return "ws" + self.base_url().removeprefix("http") + path

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.secure:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def grpc_target(self) -> str:
        return self.address.split("://", 1)[-1].rstrip("/")

    def grpc_credentials(self) -> grpc.ChannelCredentials | None:
        if not self.secure:
            return None
        roots = Path(self.ca_file).read_bytes() if self.ca_file else None
        return grpc.ssl_channel_credentials(root_certificates=roots)
