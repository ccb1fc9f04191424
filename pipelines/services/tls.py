"""TLS for every server the project runs (REST API, dashboard, gRPC) from one pair of settings.

``STRESS_TLS_CERT_PATH`` / ``STRESS_TLS_KEY_PATH`` name a PEM certificate chain and its private key;
:func:`server_tls` checks them once, at start (both or neither, readable, the key matching the
certificate), so a misconfigured server fails with a message naming the setting rather than
serving plaintext or failing on its first connection. The result gives each transport what it
takes: uvicorn's ``ssl_certfile`` / ``ssl_keyfile`` (the REST API and any ASGI dashboard), the PEM
bytes of ``grpc.ssl_server_credentials``, or an ``ssl.SSLContext`` for anything else. The server
context is Python's ``ssl.create_default_context(Purpose.CLIENT_AUTH)``, which refuses TLS below 1.2.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TlsSettingsError(ValueError):
    """Certificate settings a server cannot start with; the message names the setting."""


@dataclass(frozen=True)
class ServerTls:
    """A checked certificate chain and private key."""

    cert_path: Path
    key_path: Path

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` that serve HTTPS only."""
        return {"ssl_certfile": str(self.cert_path), "ssl_keyfile": str(self.key_path)}

    def pem_pair(self) -> tuple[bytes, bytes]:
        """(certificate chain, private key) PEM bytes, as ``grpc.ssl_server_credentials`` takes them (key first)."""
        return self.cert_path.read_bytes(), self.key_path.read_bytes()

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side context with the certificate loaded (TLS 1.2 or later)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def server_tls(cert_path: str, key_path: str, *, cert_setting: str = "STRESS_TLS_CERT_PATH",
               key_setting: str = "STRESS_TLS_KEY_PATH") -> ServerTls | None:
    """The checked TLS configuration of a server, or ``None`` when neither path is set (plaintext)."""
    if not cert_path and not key_path:
        return None
    if not cert_path or not key_path:
        missing = cert_setting if not cert_path else key_setting
        raise TlsSettingsError(f"TLS needs both {cert_setting} and {key_setting}; {missing} is empty")
    for path, setting in ((cert_path, cert_setting), (key_path, key_setting)):
        if not Path(path).is_file():
            raise TlsSettingsError(f"{setting}={path!r} is not a readable file")
    tls = ServerTls(Path(cert_path), Path(key_path))
    try:
        tls.ssl_context()
    except ssl.SSLError as error:
        raise TlsSettingsError(f"{cert_setting}={cert_path!r} and {key_setting}={key_path!r} are not a PEM "
                               f"certificate chain and its private key ({error.reason or error})") from error
    return tls


def client_verification(ca_path: str, *, setting: str = "STRESS_TLS_CA_PATH") -> ssl.SSLContext | bool:
    """What an ``httpx`` client of the project's own services verifies their certificates with.

    The system's trust store plus the CA bundle at ``ca_path`` (the services' private CA, as ``make
    certs`` or a bank's issues), or ``True`` for the system's store alone when it is empty. Both, since
    one client may also call an identity provider with a publicly trusted certificate.
    """
    if not ca_path:
        return True
    try:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=ca_path)
        return context
    except (OSError, ssl.SSLError) as error:
        raise TlsSettingsError(f"{setting}={ca_path!r} is not a readable PEM CA bundle ({error})") from error
