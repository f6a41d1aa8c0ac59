"""Python client of the Dragoman translation and summarisation service.

    from dragoman.client import Client

    with Client("localhost:50051") as client:
        print(client.translate("Guten Morgen", "en").text)

Importing this package needs only grpcio and protobuf, never the server or CTranslate2.
"""

from dragoman.client.api import Client, TranslateInput
from dragoman.client.errors import (
    Cancelled,
    DeadlineExceeded,
    DragomanError,
    InternalError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from dragoman.client.results import (
    Detection,
    DocumentError,
    LanguagePair,
    Languages,
    LanguageScore,
    ModelInfo,
    Summary,
    Translation,
)

__all__ = [
    "Cancelled",
    "Client",
    "DeadlineExceeded",
    "Detection",
    "DocumentError",
    "DragomanError",
    "InternalError",
    "InvalidArgument",
    "LanguagePair",
    "LanguageScore",
    "Languages",
    "ModelInfo",
    "NotFound",
    "ResourceExhausted",
    "Summary",
    "TranslateInput",
    "Translation",
    "Unauthenticated",
    "Unavailable",
]
