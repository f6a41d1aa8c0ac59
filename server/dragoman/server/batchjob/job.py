"""What a batch job is made of: options, documents, requests to an engine and outcomes.

Every input document gets an ordinal (its position among the input's documents) and a key
(where it sits in the input: a line number, a member path, a WARC record id). Ordinals let
the writer commit results in input order, which is what makes resuming exact; keys let a
resumed job check that the input is still the one it started on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from dragoman.server.errors import InvalidInput
from dragoman.server.text.langdetect import detect_language
from dragoman.server.text.unicode import unicode_problem

Task = Literal["translate", "summarise"]
TEXT_FORMATS = ("plain", "html", "markdown", "wrapped")
METHODS = ("auto", "extractive", "abstractive")

# Error codes of input problems found before any model sees the document. Failures reported
# by the service use its status names (INVALID_ARGUMENT, NOT_FOUND, ...).
MALFORMED_RECORD = "MALFORMED_RECORD"
MALFORMED_INPUT = "MALFORMED_INPUT"
EMPTY_TEXT = "EMPTY_TEXT"
TOO_LARGE = "TOO_LARGE"
BINARY_FILE = "BINARY_FILE"
NOT_UTF8 = "NOT_UTF8"
UNSAFE_PATH = "UNSAFE_PATH"
# Worth sending again after a pause; anything else is final for the document.
TRANSIENT_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE"})
# A title is translated from its own detected language only when it is at least this long and
# the detector is this sure; otherwise it takes its body's ("Article 1" reads as Polish at 2%).
TITLE_MIN_LETTERS = 24
TITLE_MIN_CONFIDENCE = 0.9


@dataclass(frozen=True)
class JobOptions:
    """What to do with each document; the same for every engine."""

    task: Task
    target_language: str = ""
    source_language: str = ""
    method: str = "auto"
    max_sentences: int = 0
    max_words: int = 0
    beam_size: int = 0
    # Installed model (translator or abstractive summariser) to use; "" = the service's choice.
    model: str = ""

    def __post_init__(self) -> None:
        if self.task not in ("translate", "summarise"):
            raise InvalidInput(f"task must be 'translate' or 'summarise', not {self.task!r}")
        if self.task == "translate" and not self.target_language:
            raise InvalidInput("translation needs a target language (--to)")
        if self.method not in METHODS:
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}")
        if self.max_sentences < 0 or self.max_words < 0 or self.beam_size < 0:
            raise InvalidInput("sentence, word and beam counts must not be negative")

    @property
    def translates_titles(self) -> bool:
        """Titles are translated along with the text; a summary leaves them as they are."""
        return self.task == "translate"


@dataclass(frozen=True)
class FieldOptions:
    """Names of the record fields read and written (JSONL in and out, WARC and tree records)."""

    id_field: str = "id"
    text_field: str = "text"
    title_field: str = "title"
    # Empty: derived from the task, see output_names.
    output_field: str = ""
    title_output_field: str = ""
    # Format of JSONL text fields; files take theirs from the suffix, WARC text is plain.
    text_format: str = "plain"

    def __post_init__(self) -> None:
        for name in ("id_field", "text_field", "title_field"):
            if not getattr(self, name):
                raise InvalidInput(f"{name.replace('_', '-')} must not be empty")
        if self.text_format not in TEXT_FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(TEXT_FORMATS)}")

    def output_names(self, job: JobOptions) -> tuple[str, str]:
        """(text, title) fields added to each record.

        translate: ``<text-field>_<to>`` and ``<title-field>_<to>`` (``text_de``, ``title_de``);
        summarise: ``summary``, or ``summary_<to>`` for a summary in another language (titles
        are not summarised, so the title name is empty).
        """
        if job.task != "translate":
            suffix = f"_{job.target_language}" if job.target_language else ""
            return self.output_field or f"summary{suffix}", ""
        text = self.output_field or f"{self.text_field}_{job.target_language}"
        title = self.title_output_field or f"{self.title_field}_{job.target_language}"
        if text == title:
            raise InvalidInput(f"the text and title results would both go to field {text!r}")
        return text, title


@dataclass(frozen=True)
class Document:
    """One input document ready for an engine."""

    ordinal: int
    key: str
    id: str | None
    text: str
    format: str = "plain"
    title: str | None = None
    # What the writer needs to rebuild the output record: the raw JSONL line, a dict of
    # fields (WARC), or None (files, whose output is the result text itself).
    record: Any = None


@dataclass(frozen=True)
class Rejected:
    """An input item that is not a usable document; it becomes an error record."""

    ordinal: int
    key: str
    id: str | None
    code: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    """An item before the resume point: counted and checked, never parsed or processed."""

    ordinal: int
    key: str


Item = Document | Rejected


@dataclass(frozen=True)
class Failure:
    code: str
    reason: str


@dataclass(frozen=True)
class Request:
    """One text for an engine; ``part`` is "text" or "title" of document ``ordinal``."""

    ordinal: int
    part: str
    text: str
    format: str = "plain"
    source: str = ""  # source language for this text ("": the job's, or detected)
    fallback_source: str = ""  # tried instead when ``source`` has no model (titles only)

    @property
    def tag(self) -> str:
        """A string id that survives a trip through a server (TranslateRequest.id)."""
        return f"{self.ordinal}:{self.part}"

    @staticmethod
    def parse_tag(tag: str) -> tuple[int, str]:
        ordinal, _, part = tag.partition(":")
        return int(ordinal), part


@dataclass(frozen=True)
class Reply:
    ordinal: int
    part: str
    text: str | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of one document: its result text (and title), or why it failed."""

    item: Item
    text: str | None = None
    title: str | None = None
    failure: Failure | None = None

    @property
    def ordinal(self) -> int:
        return self.item.ordinal

    @property
    def ok(self) -> bool:
        return self.failure is None


class Engine(Protocol):
    """Processes requests with a bounded number in flight; replies in completion order.

    ``requests`` may block (the runner throttles it); exceptions it raises propagate out of
    ``process``. A reply carries a failure for a document that failed; ``process`` itself
    raises only when the engine as a whole cannot go on (e.g. the server went away).
    """

    def process(self, requests: Iterable[Request]) -> Iterator[Reply]: ...

    def close(self) -> None: ...


def title_language(title: str, body: str) -> tuple[str, str]:
    """(source, fallback) languages for a title: its body's, unless it clearly has its own.

    A title is a few words, too few for a detector to be sure of; the body is the same article
    and long enough. So the title takes the body's language unless it is long and detected with
    high confidence as another, and then the body's language is the fallback if the title's
    own has no model. ("", "") when the body gives nothing to detect: the server decides.
    """
    try:
        body_language = detect_language(body).language
    except InvalidInput:
        return "", ""
    if sum(c.isalpha() for c in title) < TITLE_MIN_LETTERS:
        return body_language, ""
    try:
        own = detect_language(title)
    except InvalidInput:
        return body_language, ""
    if own.language == body_language or own.confidence < TITLE_MIN_CONFIDENCE:
        return body_language, ""
    return own.language, body_language


def requests_for(doc: Document, job: JobOptions) -> list[Request]:
    """The engine requests of one document: its text, and its title when translating."""
    requests = [Request(doc.ordinal, "text", doc.text, doc.format)]
    if doc.title and job.translates_titles:
        source, fallback = ("", "") if job.source_language else title_language(doc.title, doc.text)
        requests.append(Request(doc.ordinal, "title", doc.title, "plain", source, fallback))
    return requests


def precheck(doc: Document, job: JobOptions | None = None) -> Failure | None:
    """Problems worth reporting without a round trip to a model."""
    if not doc.text.strip():
        return Failure(EMPTY_TEXT, "the document has no text")
    # Checked here, for every engine: a string no encoder accepts fails its document, not
    # the job (the server engine could not even send it).
    problem = unicode_problem(doc.text)
    if problem is None and doc.title and (job is None or job.translates_titles):
        problem = unicode_problem(doc.title, "title")
    return Failure(InvalidInput.code, problem) if problem else None


@dataclass
class Assembly:
    """Collects the replies of one document's requests into its outcome."""

    doc: Document
    requests: dict[str, Request]
    waiting: set[str]
    results: dict[str, str] = field(default_factory=dict)
    failure: Failure | None = None

    @classmethod
    def start(cls, doc: Document, requests: list[Request]) -> Assembly:
        return cls(doc, {r.part: r for r in requests}, {r.part for r in requests})

    def fallback(self, reply: Reply) -> Request | None:
        """The request to send instead of a failed one, if it has another language to try.

        A title whose own detected language has no model is translated as its body's language:
        a title's guessed language never fails its record.
        """
        request = self.requests.get(reply.part)
        if (reply.failure is None or request is None or not request.fallback_source
                or reply.failure.code not in ("NOT_FOUND", "INVALID_ARGUMENT")):
            return None
        retry = replace(request, source=request.fallback_source, fallback_source="")
        self.requests[reply.part] = retry
        return retry

    def add(self, reply: Reply) -> Outcome | None:
        """Record a reply; returns the outcome once every part has answered."""
        self.waiting.discard(reply.part)
        if reply.failure is not None:
            if self.failure is None:
                prefix = "" if reply.part == "text" else f"{reply.part}: "
                self.failure = Failure(reply.failure.code, prefix + reply.failure.reason)
        else:
            self.results[reply.part] = reply.text or ""
        if self.waiting:
            return None
        if self.failure is not None:
            return Outcome(self.doc, failure=self.failure)
        return Outcome(self.doc, self.results.get("text"), self.results.get("title"))
