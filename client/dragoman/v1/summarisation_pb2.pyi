from dragoman.v1 import translation_pb2 as _translation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SummaryMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUMMARY_METHOD_UNSPECIFIED: _ClassVar[SummaryMethod]
    SUMMARY_METHOD_EXTRACTIVE: _ClassVar[SummaryMethod]
    SUMMARY_METHOD_ABSTRACTIVE: _ClassVar[SummaryMethod]
SUMMARY_METHOD_UNSPECIFIED: SummaryMethod
SUMMARY_METHOD_EXTRACTIVE: SummaryMethod
SUMMARY_METHOD_ABSTRACTIVE: SummaryMethod

class SummariseRequest(_message.Message):
    __slots__ = ("id", "text", "language", "target_language", "method", "max_sentences", "max_words", "format", "model", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MAX_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_WORDS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    language: str
    target_language: str
    method: SummaryMethod
    max_sentences: int
    max_words: int
    format: _translation_pb2.TextFormat
    model: str
    priority: _translation_pb2.Priority
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., language: _Optional[str] = ..., target_language: _Optional[str] = ..., method: _Optional[_Union[SummaryMethod, str]] = ..., max_sentences: _Optional[int] = ..., max_words: _Optional[int] = ..., format: _Optional[_Union[_translation_pb2.TextFormat, str]] = ..., model: _Optional[str] = ..., priority: _Optional[_Union[_translation_pb2.Priority, str]] = ...) -> None: ...

class SummariseResponse(_message.Message):
    __slots__ = ("id", "summary", "language", "method", "model", "models", "target_language", "passes", "sentences")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PASSES_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    id: str
    summary: str
    language: str
    method: SummaryMethod
    model: str
    models: _containers.RepeatedScalarFieldContainer[str]
    target_language: str
    passes: int
    sentences: int
    def __init__(self, id: _Optional[str] = ..., summary: _Optional[str] = ..., language: _Optional[str] = ..., method: _Optional[_Union[SummaryMethod, str]] = ..., model: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., target_language: _Optional[str] = ..., passes: _Optional[int] = ..., sentences: _Optional[int] = ...) -> None: ...
