"""Who may call, and how much: one access check shared by the gRPC and HTTP adapters.

The adapters only extract the presented key (gRPC ``authorization: Bearer KEY`` metadata, the
HTTP dialects' own places for it) and map the errors below to their status codes; the decision
lives here so both transports enforce exactly the same rules. grpc-free by design.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from dragoman.server.errors import DragomanError, Overloaded


class Unauthenticated(DragomanError):
    """No key, or a key that is not valid, while keys are required."""

    code = "UNAUTHENTICATED"


class QuotaExceeded(Overloaded):
    """The key's character quota is used up (HTTP: LibreTranslate 429, DeepL 456)."""


@dataclass(frozen=True)
class Principal:
    """The caller a key belongs to ("anonymous" when no keys are required)."""

    name: str


ANONYMOUS = Principal("anonymous")


class AccessControl:
    """Checks keys and charges characters against quotas.

    This base implementation knows one optional shared token (``--token``); with no token
    every caller is anonymous and unlimited.
    """

    def __init__(self, token: str = "") -> None:
        self._token = token.encode()

    @property
    def required(self) -> bool:
        """True when callers must present a key."""
        return bool(self._token)

    def authenticate(self, key: str | None) -> Principal:
        """The caller ``key`` belongs to; raises :class:`Unauthenticated`."""
        if not self.required:
            return ANONYMOUS
        given = (key or "").encode()
        if given and hmac.compare_digest(given, self._token):
            return Principal("token")
        raise Unauthenticated("missing or invalid API key")

    def charge(self, principal: Principal, chars: int) -> None:
        """Count ``chars`` against the principal's quota; raises :class:`QuotaExceeded`."""
        return None
