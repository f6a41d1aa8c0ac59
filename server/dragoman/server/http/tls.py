"""HTTPS for the HTTP adapter with the gRPC listener's certificate, reloaded from disk.

Python's ``ssl`` calls the listening context's ``sni_callback`` for every client hello (with or
without SNI); there we check the files (a ``stat``) and hand the connection the newest context,
so a renewed certificate reaches new connections without a restart, as on the gRPC side.
"""

from __future__ import annotations

import logging
import ssl

from dragoman.server.errors import InvalidInput
from dragoman.server.tlsfiles import TlsFiles, TlsSettings

logger = logging.getLogger(__name__)


class ReloadingContext:
    """The listener's ``SSLContext`` (:attr:`context`) and the freshest one it hands out."""

    def __init__(self, settings: TlsSettings) -> None:
        self._files = TlsFiles(settings)
        self.context = self._files.server_context()
        self.context.sni_callback = self._hello
        self._latest = self.context
        self.reloads = 0

    def request_reload(self) -> None:
        self._files.request_reload()

    def _hello(self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
               context: ssl.SSLContext) -> None:
        try:
            if self._files.take_change():
                self._latest = self._files.server_context()
                self.reloads += 1
                logger.info("HTTPS certificate reloaded from %s", self._files.settings.cert)
        except InvalidInput as exc:
            logger.warning("keeping the current HTTPS certificate: %s", exc)
        except Exception:  # never break handshakes over a reload
            logger.exception("keeping the current HTTPS certificate")
        if self._latest is not self.context:
            sock.context = self._latest
