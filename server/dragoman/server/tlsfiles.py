"""The server's TLS files as they are on disk, shared by the gRPC and HTTP listeners.

Both listeners serve the same certificate (``--tls-cert``/``--tls-key``, and ``--tls-client-ca``
for mutual TLS). Each asks :meth:`TlsFiles.take_change` before a handshake: a ``stat`` of the
files, so a renewed certificate (cert-manager, certbot) reaches new connections without a
restart. A new pair is checked first; a half-written or broken one raises
:class:`InvalidInput` and the caller keeps serving the current one. grpc-free by design.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from dragoman.server.errors import InvalidInput

logger = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class TlsSettings:
    cert: str
    key: str
    client_ca: str = ""  # set: clients must present a certificate this CA signed (mTLS)


@dataclass(frozen=True)
class TlsMaterial:
    """The checked bytes of one certificate chain, its key and the optional client CA."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


class TlsFiles:
    """Watches the files of one :class:`TlsSettings` for one listener."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._paths = tuple(
            Path(p).expanduser() for p in (settings.cert, settings.key, settings.client_ca) if p)
        self._lock = threading.Lock()
        self._force = False
        self._stamp = self._stamps()
        self.initial = self.read()  # a broken pair at start is the user's error

    def _stamps(self) -> _Stamp:
        out: list[tuple[int, int, int] | None] = []
        for path in self._paths:
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def read(self) -> TlsMaterial:
        """Read and check the files; raises InvalidInput naming the problem."""
        s = self.settings
        try:
            cert = Path(s.cert).expanduser().read_bytes()
            key = Path(s.key).expanduser().read_bytes()
            ca = Path(s.client_ca).expanduser().read_bytes() if s.client_ca else None
        except OSError as exc:
            raise InvalidInput(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        self.server_context()  # the key must match the certificate
        if ca is not None:
            try:
                ssl.create_default_context(cadata=ca.decode("ascii"))
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput(
                    f"--tls-client-ca {s.client_ca}: not a PEM CA bundle ({exc})") from None
        return TlsMaterial(cert, key, ca)

    def server_context(self) -> ssl.SSLContext:
        """A server-side ``SSLContext`` from the files (client certificates required with a
        client CA); raises InvalidInput."""
        s = self.settings
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(Path(s.cert).expanduser(), Path(s.key).expanduser())
        except (ssl.SSLError, OSError) as exc:
            raise InvalidInput(
                f"--tls-cert {s.cert} / --tls-key {s.key}: not a PEM certificate chain and "
                f"its matching private key ({exc})") from None
        if s.client_ca:
            try:
                context.load_verify_locations(cafile=str(Path(s.client_ca).expanduser()))
            except (ssl.SSLError, OSError) as exc:
                raise InvalidInput(
                    f"--tls-client-ca {s.client_ca}: not a PEM CA bundle ({exc})") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def request_reload(self) -> None:
        """Re-read the files before the next handshake even if they look unchanged (SIGHUP)."""
        with self._lock:
            self._force = True

    def take_change(self) -> bool:
        """True once after the files changed on disk or a reload was requested."""
        stamp = self._stamps()
        with self._lock:
            if stamp == self._stamp and not self._force:
                return False
            self._stamp, self._force = stamp, False
            return True
