"""TLS on both ports, and mTLS when a client CA is given: one `Certificates` that both front doors read,
and that `reload()` replaces while serving.

REST (uvicorn, on asyncio's TLS) is handed one listening `ssl.SSLContext` for good. Rotation swaps the
context each new handshake gets: the listener's SNI callback, which OpenSSL calls on every ClientHello
(with or without a server name), gives the connection the newest context, as Python's documentation of
`sni_callback` describes. gRPC rotates natively: `grpc.dynamic_ssl_server_credentials` asks for the newest
configuration before each handshake. Either way, a connection keeps the certificate it was opened with,
and none is dropped.

TLS 1.2 is the minimum on both: Python's contexts by `minimum_version`, gRPC core by its default.
"""

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.security.unusable import UnusableSecret


@dataclass(frozen=True)
class _Loaded:
    context: ssl.SSLContext
    cert: bytes
    key: bytes
    client_ca: bytes | None


class Certificates:
    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
        self._cert_file, self._key_file, self._client_ca_file = cert_file, key_file, client_ca_file
        self.files = (cert_file, key_file) if client_ca_file is None else (cert_file, key_file, client_ca_file)
        self._loaded = self._load()
        self._listener = self._loaded.context
        self._listener.sni_callback = self._hand_newest
        self._generation = 0
        self._grpc_generation = 0

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate signed by the client CA."""
        return self._client_ca_file is not None

    def reload(self) -> None:
        """Read the files again: new handshakes on both ports use them. Raise UnusableSecret, and keep the
        ones in use, if they do not make a certificate and its key."""
        self._loaded = self._load()
        self._generation += 1

    def ssl_context(self) -> ssl.SSLContext:
        """The context to listen with: it hands every handshake the newest certificate."""
        return self._listener

    def grpc_credentials(self) -> Any:
        """gRPC server credentials that ask for the newest certificate before each handshake."""
        import grpc

        return grpc.dynamic_ssl_server_credentials(
            self._grpc_configuration(), self._grpc_newer, require_client_authentication=self.mutual
        )

    def _hand_newest(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        newest = self._loaded.context
        if context is not newest:
            connection.context = newest

    def _grpc_newer(self) -> Any:
        if self._grpc_generation == self._generation:
            return None  # keep the configuration in use
        self._grpc_generation = self._generation
        return self._grpc_configuration()

    def _grpc_configuration(self) -> Any:
        import grpc

        loaded = self._loaded
        return grpc.ssl_server_certificate_configuration([(loaded.key, loaded.cert)], loaded.client_ca)

    def _load(self) -> _Loaded:
        cert, key = _read(self._cert_file, "certificate"), _read(self._key_file, "key")
        client_ca = None if self._client_ca_file is None else _read(self._client_ca_file, "client CA")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self._cert_file, self._key_file)
            if client_ca is not None:
                context.load_verify_locations(cadata=client_ca.decode("ascii"))
                context.verify_mode = ssl.CERT_REQUIRED
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as e:
            names = ", ".join(str(f) for f in self.files)
            raise UnusableSecret(f"{names} do not make a certificate, its key and a CA: {e}") from None
        return _Loaded(context, cert, key, client_ca)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UnusableSecret(f"the TLS {what} file {path} cannot be read: {e.strerror}") from None
