"""What can be installed: the Argos index, and a short curated list of Hugging Face checkpoints
of the families Dragoman converts (no hub search: these are known to convert).

Sizes of the Hugging Face entries are approximate downloads (the weights Dragoman fetches),
rounded; Argos entries show the index's ``size`` where it has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dragoman.server.langcodes import NLLB_CODES, to_iso639_1
from dragoman.server.sources import argos
from dragoman.server.text.languages import is_language_code

MB = 1000 * 1000


@dataclass(frozen=True)
class Available:
    """One installable model."""

    source: str  # "argos" or "hf"
    spec: str  # what `dragoman models install` takes
    task: str
    source_languages: tuple[str, ...]
    target_languages: tuple[str, ...]
    size_bytes: int | None = None
    description: str = ""
    # Install options the checkpoint does not state itself (T5: task and language).
    defaults: Mapping[str, object] = field(default_factory=dict)

    def serves(self, source: str | None, target: str | None) -> bool:
        return (source is None or source in self.source_languages) and (
            target is None or target in self.target_languages)


def _iso(codes: Iterable[str]) -> tuple[str, ...]:
    out = []
    for code in codes:
        iso = code if is_language_code(code) else to_iso639_1(code)
        if iso and iso not in out:
            out.append(iso)
    return tuple(sorted(out))


# OPUS-MT pairs of the languages newsrooms ask for most; any other pair: opus-mt:SRC-TGT.
_OPUS_PAIRS = (
    "de-en", "en-de", "fr-en", "en-fr", "es-en", "en-es", "it-en", "en-it", "nl-en", "en-nl",
    "ru-en", "en-ru", "zh-en", "en-zh", "ja-en", "ar-en", "en-ar", "pl-en", "sv-en", "uk-en",
    "tr-en", "de-fr", "fr-de",
)
_M2M100 = _iso(
    "af am ar ast be bg bn br bs ca ceb cs cy da de el en es et fa ff fi fr fy ga gd gl gu ha "
    "he hi hr ht hu hy id ig ilo is it ja jv ka kk km kn ko lb lg ln lo lt lv mg mk ml mn mr "
    "ms my ne nl no ns oc or pa pl ps pt ro ru sd si sk sl so sq sr ss su sv sw ta th tl tn tr "
    "uk ur uz vi wo xh yi yo zh zu".split())
_XLSUM = _iso(
    "am ar az bn my zh en fr gu ha hi ig id ja rn ko ky mr ne om ps fa pt pa ru gd sr si so es "
    "sw ta te th ti tr uk ur uz vi cy yo".split())
_NLLB = tuple(sorted(NLLB_CODES))


def _summariser(repo: str, languages: tuple[str, ...], mb: int, what: str,
                **defaults: object) -> Available:
    return Available("hf", f"hf:{repo}", "summarise", languages, languages, mb * MB, what,
                     defaults)


HF_CATALOGUE: tuple[Available, ...] = (
    *(Available("hf", f"opus-mt:{pair}", "translate", (pair.split("-")[0],),
                (pair.split("-")[1],), 300 * MB, f"OPUS-MT (Helsinki-NLP/opus-mt-{pair})")
      for pair in _OPUS_PAIRS),
    Available("hf", "hf:facebook/nllb-200-distilled-600M", "translate", _NLLB, _NLLB,
              2460 * MB, "NLLB-200 distilled 600M: every pair of its languages"),
    Available("hf", "hf:facebook/nllb-200-distilled-1.3B", "translate", _NLLB, _NLLB,
              5480 * MB, "NLLB-200 distilled 1.3B"),
    Available("hf", "hf:facebook/m2m100_418M", "translate", _M2M100, _M2M100, 1940 * MB,
              "M2M100 418M: every pair of its languages"),
    Available("hf", "hf:facebook/m2m100_1.2B", "translate", _M2M100, _M2M100, 4960 * MB,
              "M2M100 1.2B"),
    _summariser("sshleifer/distilbart-cnn-12-6", ("en",), 1220, "DistilBART CNN news summaries",
                source_languages=("en",)),
    _summariser("facebook/bart-large-cnn", ("en",), 1630, "BART large CNN news summaries",
                source_languages=("en",)),
    _summariser("google/pegasus-cnn_dailymail", ("en",), 2280, "PEGASUS CNN/DailyMail"),
    _summariser("google/pegasus-xsum", ("en",), 2280, "PEGASUS XSum one-sentence summaries"),
    _summariser("google/flan-t5-small", ("en",), 310, "FLAN-T5 small (summarize: prefix)",
                task="summarise", source_languages=("en",)),
    _summariser("google/flan-t5-base", ("en",), 990, "FLAN-T5 base (summarize: prefix)",
                task="summarise", source_languages=("en",)),
    _summariser("csebuetnlp/mT5_multilingual_XLSum", _XLSUM, 2330,
                "mT5 XL-Sum: news summaries in 45 languages", task="summarise",
                source_languages=_XLSUM, text_prefix=""),
)


def catalogue_entry(spec: str) -> Available | None:
    for entry in HF_CATALOGUE:
        if entry.spec == spec or entry.spec == f"hf:{spec.removeprefix('hf:')}":
            return entry
    return None


def argos_entries(index: str | None = None) -> list[Available]:
    """The newest package of every pair in the Argos index."""
    newest: dict[tuple[str, str], argos.ArgosPackage] = {}
    for package in argos.load_index(index):
        key = (package.from_code, package.to_code)
        if package.links and (key not in newest
                              or package.version_key > newest[key].version_key):
            newest[key] = package
    return [
        Available("argos", f"argos:{src}-{tgt}", "translate", (src,), (tgt,), p.size,
                  f"Argos Translate {p.code} {p.version}")
        for (src, tgt), p in sorted(newest.items())
    ]


def available(
    source: str | None = None, from_language: str | None = None, to_language: str | None = None,
    *, index: str | None = None,
) -> tuple[list[Available], list[str]]:
    """(installable models matching the filters, problems reaching a source)."""
    entries: list[Available] = []
    problems: list[str] = []
    if source in (None, "argos"):
        from dragoman.server.errors import DragomanError

        try:
            entries.extend(argos_entries(index))
        except DragomanError as exc:
            problems.append(f"argos: {exc}")
    if source in (None, "hf"):
        entries.extend(HF_CATALOGUE)
    return [e for e in entries if e.serves(from_language, to_language)], problems
