"""TLS and mutual TLS for the gRPC server, with certificates reloaded from disk.

gRPC asks :meth:`CertificateFiles.fetch` before each new handshake; it costs a ``stat`` of the
files and re-reads them only when they changed or after :meth:`request_reload` (SIGHUP), so a
renewed certificate (cert-manager, certbot) is served to new connections without a restart.
A new pair is checked first (the key must match the certificate): a half-written or broken
one is logged and the current one kept.
"""

from __future__ import annotations

import logging

import grpc

from dragoman.server.errors import InvalidInput
from dragoman.server.tlsfiles import TlsFiles, TlsMaterial, TlsSettings

__all__ = ["CertificateFiles", "TlsSettings"]

logger = logging.getLogger(__name__)


def _configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.client_ca)


class CertificateFiles:
    """The server's certificate, key and optional client CA, as gRPC asks for them."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._files = TlsFiles(settings)
        self._initial = _configuration(self._files.initial)
        self.reloads = 0

    def request_reload(self) -> None:
        """Re-read the files before the next handshake even if they look unchanged (SIGHUP)."""
        self._files.request_reload()
        logger.info("TLS files will be re-read at the next connection")

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate fetcher: a new configuration, or None to keep the current one."""
        try:
            if not self._files.take_change():
                return None
            config = _configuration(self._files.read())
        except InvalidInput as exc:
            logger.warning("keeping the current TLS certificate: %s", exc)
            return None
        except Exception:  # never break handshakes over a reload
            logger.exception("keeping the current TLS certificate")
            return None
        self.reloads += 1
        logger.info("TLS certificate reloaded from %s", self.settings.cert)
        return config

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self.fetch,
            require_client_authentication=bool(self.settings.client_ca))
