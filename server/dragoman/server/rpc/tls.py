"""TLS and mutual TLS for the gRPC server, with certificates reloaded from disk.

gRPC asks :meth:`CertificateFiles.fetch` before each new handshake; it costs a ``stat`` of the
files and re-reads them only when they changed or after :meth:`request_reload` (SIGHUP), so a
renewed certificate (cert-manager, certbot) is served to new connections without a restart.
A new pair is checked first (the key must match the certificate): a half-written or broken
one is logged and the current one kept.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from dragoman.server.errors import InvalidInput

logger = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class TlsSettings:
    cert: str
    key: str
    client_ca: str = ""  # set: clients must present a certificate this CA signed (mTLS)


class CertificateFiles:
    """The server's certificate, key and optional client CA, as they are on disk."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._paths = tuple(
            Path(p).expanduser() for p in (settings.cert, settings.key, settings.client_ca) if p)
        self._lock = threading.Lock()
        self._force = False
        self._stamp = self._stamps()
        self._initial = self._read()  # a broken pair at start is the user's error
        self.reloads = 0

    def _stamps(self) -> _Stamp:
        out: list[tuple[int, int, int] | None] = []
        for path in self._paths:
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _read(self) -> grpc.ServerCertificateConfiguration:
        """Read and check the files; raises InvalidInput naming the problem."""
        s = self.settings
        try:
            cert = Path(s.cert).expanduser().read_bytes()
            key = Path(s.key).expanduser().read_bytes()
            ca = Path(s.client_ca).expanduser().read_bytes() if s.client_ca else None
        except OSError as exc:
            raise InvalidInput(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(Path(s.cert).expanduser(), Path(s.key).expanduser())
        except (ssl.SSLError, OSError) as exc:
            raise InvalidInput(
                f"--tls-cert {s.cert} / --tls-key {s.key}: not a PEM certificate chain and "
                f"its matching private key ({exc})") from None
        if ca is not None:
            try:
                ssl.create_default_context(cadata=ca.decode("ascii"))
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput(
                    f"--tls-client-ca {s.client_ca}: not a PEM CA bundle ({exc})") from None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def request_reload(self) -> None:
        """Re-read the files before the next handshake even if they look unchanged (SIGHUP)."""
        with self._lock:
            self._force = True
        logger.info("TLS files will be re-read at the next connection")

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate fetcher: a new configuration, or None to keep the current one."""
        try:
            stamp = self._stamps()
            with self._lock:
                if stamp == self._stamp and not self._force:
                    return None
                self._stamp, self._force = stamp, False
            config = self._read()
        except InvalidInput as exc:
            logger.warning("keeping the current TLS certificate: %s", exc)
            return None
        except Exception:  # noqa: BLE001 - never break handshakes over a reload
            logger.exception("keeping the current TLS certificate")
            return None
        self.reloads += 1
        logger.info("TLS certificate reloaded from %s", self.settings.cert)
        return config

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self.fetch,
            require_client_authentication=bool(self.settings.client_ca))
