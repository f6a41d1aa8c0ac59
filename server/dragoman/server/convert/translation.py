"""Translation families: OPUS-MT/Marian (Hugging Face or native), NLLB-200 and M2M100.

The manifest must make CTranslate2 see exactly the token sequence transformers feeds the
model, so the special tokens around a source are not hard-coded per family: they are read off
the checkpoint's own tokenizer (encode a probe with and without special tokens and look at
what was added), the source-language token is turned back into ``{src}``, and whatever the
converted model adds by itself (``add_source_bos``/``add_source_eos``) is dropped again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dragoman.server.convert.common import copy_into
from dragoman.server.errors import StoreError
from dragoman.server.langcodes import (
    NLLB_CODES,
    ModelCode,
    match_codes,
    parse_m2m100,
    parse_nllb,
    parse_opus,
    to_iso639_1,
)
from dragoman.server.manifest import (
    Generation,
    InstallOptions,
    Manifest,
    Tokenizer,
    read_json_object,
)

logger = logging.getLogger(__name__)

_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")
# "opus-mt-en-de", "opus-mt-tc-big-en-fr", "opus-2020-01-01-de-en", "de-en".
_CODES = r"[A-Za-z]{2,3}(?:[_+][A-Za-z]{2,3})*"
_PAIR_IN_NAME = re.compile(rf"(?:^|[-/])({_CODES})-({_CODES})$")
_README_LANGS = re.compile(
    r"^\W*(source|target) languages?(?:\(s\))?\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE
)
_PROBE = "Probe text 42"


@dataclass(frozen=True)
class Template:
    """Special tokens the checkpoint's tokenizer puts around a source text."""

    prefix: tuple[str, ...]
    suffix: tuple[str, ...]


# -- shared helpers -------------------------------------------------------------------------


def _default_name(source: Path, options: InstallOptions) -> str:
    """``--name``, else the folder name; a Hugging Face cache snapshot
    (``models--facebook--nllb-200-distilled-600M/snapshots/<commit>``) is named after its repo."""
    if options.name:
        return options.name
    folder = source.resolve()
    name = folder.name
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        name = folder.parent.parent.name.rsplit("--", 1)[-1]
    return (_NAME_BAD.sub("-", name).strip("-.") or "model")[:128]


def _check_task(options: InstallOptions) -> None:
    if options.task and options.task != "translate":
        raise StoreError(f"this is a translation model; --task {options.task} does not apply")


def _load_hf_tokenizer(source: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"cannot load the tokenizer of {source}: {exc}") from exc


def _probe_template(tokenizer: Any) -> Template:
    """What ``tokenizer`` adds around a text when it builds model inputs."""
    plain = list(tokenizer(_PROBE, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(_PROBE, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            tokens = tokenizer.convert_ids_to_tokens(full)
            return Template(tuple(tokens[:start]), tuple(tokens[start + len(plain):]))
    raise StoreError(
        f"cannot tell which special tokens {type(tokenizer).__name__} adds: the text's tokens "
        "are not a contiguous part of the model input"
    )


class _WithLanguageTokens:
    """A tokenizer whose ``get_vocab`` also lists its language tokens.

    transformers 5 keeps M2M100's ``__de__`` tokens only in ``lang_token_to_id``, outside
    ``get_vocab()`` and the special-token lists CTranslate2's M2M100 loader reads, so the
    converter would build a vocabulary without them and refuse the model (or misalign ids).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def get_vocab(self) -> dict[str, int]:
        return full_vocabulary(self._tokenizer)


def full_vocabulary(tokenizer: Any) -> dict[str, int]:
    """token -> id over everything the tokenizer can produce, language tokens included."""
    vocab = dict(tokenizer.get_vocab())
    for token, index in dict(getattr(tokenizer, "lang_token_to_id", None) or {}).items():
        vocab.setdefault(token, int(index))
    return vocab


# Added to the <pad> logit when the checkpoint bans generating it: the most negative float16,
# so the bias survives any quantization and exp() of it is exactly 0 after softmax.
_BANNED_LOGIT = -65504.0


def _start_from_pad_row(spec: Any, model: Any, pad_token: str) -> None:
    """Make a Marian decoder start from its ``<pad>`` embedding, as transformers does.

    CTranslate2's Marian loader drops the ``<pad>`` row (the last one) from the vocabulary and
    the embeddings and starts the decoder from a zero vector instead. That is exact for
    OPUS-MT releases, whose ``<pad>`` row is zero, but a checkpoint fine-tuned in transformers
    with tied embeddings trains that row through the output projection, and every output
    then differs. Such a model keeps its ``<pad>`` row and token and starts from it; the
    checkpoint's ``bad_words_ids`` ban on generating ``<pad>`` becomes a bias that no output
    can overcome.
    """
    weight = model.get_input_embeddings().weight
    pad = model.config.pad_token_id
    if pad is None or not bool(weight[pad].any()):
        return  # a zero row: CTranslate2's zero start embedding is exact
    vocabularies = getattr(spec, "_vocabularies", None)
    if pad != weight.shape[0] - 1 or not isinstance(vocabularies, dict):
        raise StoreError(
            "this Marian checkpoint's decoder starts from a trained <pad> embedding (fine-tuned "
            "with tied embeddings), which CTranslate2's converter replaces by zeros; it cannot "
            "be converted exactly"
        )
    for lists in vocabularies.values():
        for tokens in lists:
            if len(tokens) == pad:
                tokens.append(pad_token)
    spec.encoder.embeddings[0].weight = model.get_encoder().embed_tokens.weight
    spec.decoder.embeddings.weight = model.get_decoder().embed_tokens.weight
    spec.decoder.projection.weight = model.lm_head.weight
    bias = getattr(model, "final_logits_bias", None)
    bias = bias.detach().reshape(-1).clone() if bias is not None else weight.new_zeros(pad + 1)
    banned = getattr(model.generation_config, "bad_words_ids", None) or []
    if [pad] in [list(ids) for ids in banned]:
        bias[pad] = _BANNED_LOGIT
    spec.decoder.projection.bias = bias
    spec.decoder.start_from_zero_embedding = False
    spec.config.decoder_start_token = pad_token
    logger.info("Marian <pad> row is trained: the decoder starts from it, as in transformers")


def _run_converter(source: Path, target: Path, quantization: str | None) -> None:
    """CTranslate2's TransformersConverter, fed a tokenizer with its full vocabulary (and, for
    Marian, keeping a trained decoder start embedding: :func:`_start_from_pad_row`)."""
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        model: Any = None
        tokenizer: Any = None

        def load_model(self, model_class: Any, path: str, **kwargs: Any) -> Any:
            self.model = super().load_model(model_class, path, **kwargs)
            return self.model

        def load_tokenizer(self, tokenizer_class: Any, path: str, **kwargs: Any) -> Any:
            tokenizer = super().load_tokenizer(tokenizer_class, path, **kwargs)
            self.tokenizer = tokenizer
            if set(full_vocabulary(tokenizer)) - set(tokenizer.get_vocab()):
                return _WithLanguageTokens(tokenizer)
            return tokenizer

        def _load(self) -> Any:
            spec = super()._load()
            if self.model is not None and self.model.config.model_type == "marian":
                _start_from_pad_row(spec, self.model, str(self.tokenizer.pad_token))
            return spec

    try:
        Converter(str(source)).convert(str(target), quantization=quantization or None, force=True)
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        raise StoreError(f"conversion of {source} failed: {exc}") from exc
    logger.info("converted %s -> %s (%s)", source, target, quantization or "float32")


def _ct2_token_list(target: Path) -> list[str]:
    for name in ("shared_vocabulary.json", "source_vocabulary.json"):
        path = target / name
        if path.is_file():
            return list(json.loads(path.read_text(encoding="utf-8")))
    for name in ("shared_vocabulary.txt", "source_vocabulary.txt"):
        path = target / name
        if path.is_file():
            return path.read_text(encoding="utf-8").split("\n")
    raise StoreError(f"the converted model in {target} has no vocabulary file")


def _check_alignment(tokens: list[str], vocab: dict[str, int], source: Path) -> None:
    """Every token must sit at its transformers id, or CTranslate2 would read the wrong
    embedding rows for it (tokens CTranslate2 dropped on purpose, like Marian's trailing
    ``<pad>``, lie beyond its list)."""
    wrong = [
        f"{token!r} (id {index}, converted {tokens[index]!r})"
        for token, index in sorted(vocab.items(), key=lambda item: item[1])
        if index < len(tokens) and tokens[index] != token
    ]
    if wrong:
        raise StoreError(
            f"{source}: the converted vocabulary does not match the tokenizer's ids: "
            + ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        )


def _ct2_vocabulary(target: Path) -> set[str]:
    return set(_ct2_token_list(target))


def _drop_automatic(template: Template, target: Path) -> Template:
    """Remove the tokens CTranslate2 itself adds to every source (``add_source_bos/eos``)."""
    config = read_json_object(target / "config.json")
    prefix, suffix = list(template.prefix), list(template.suffix)
    if config.get("add_source_bos") and prefix and prefix[0] == config.get("bos_token"):
        prefix.pop(0)
    if config.get("add_source_eos") and suffix and suffix[-1] == config.get("eos_token"):
        suffix.pop()
    return Template(tuple(prefix), tuple(suffix))


def _check_tokens(tokens: Iterable[str], vocabulary: set[str], what: str) -> None:
    missing = sorted({t for t in tokens if t not in vocabulary and "{" not in t})
    if missing:
        raise StoreError(
            f"{what}: tokens {', '.join(missing)} are not in the converted model's vocabulary"
        )


def _generation(source: Path) -> Generation:
    """Beam size from the checkpoint's generation settings; the rest stays at the defaults."""
    gen = read_json_object(source / "generation_config.json") or read_json_object(source / "config.json")
    beams = gen.get("num_beams")
    if isinstance(beams, int) and beams > 0:
        return Generation(beam_size=beams)
    return Generation()


def _max_input(config: dict[str, Any], tokenizer: Any, default: int = 512) -> int:
    limits = [int(config.get("max_position_embeddings") or default)]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 8 <= model_max < 1_000_000:
        limits.append(model_max)
    return min(limits)


def _iso_list(codes: Iterable[str]) -> tuple[str, ...] | None:
    """ISO 639-1 codes for every code, or None when one has none (a group such as ``mul``)."""
    out: list[str] = []
    for code in codes:
        iso = to_iso639_1(code)
        if iso is None:
            return None
        if iso not in out:
            out.append(iso)
    return tuple(out) or None


def _languages_from_name(*names: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    for name in names:
        m = _PAIR_IN_NAME.search(name.rstrip("/"))
        if m:
            split = re.compile(r"[_+]")
            return _iso_list(split.split(m.group(1))), _iso_list(split.split(m.group(2)))
    return None, None


def _choose_languages(
    given: Sequence[str], found: Sequence[str] | None, flag: str, what: str, source: Path
) -> tuple[str, ...]:
    if given:
        return tuple(given)
    if found:
        return tuple(found)
    raise StoreError(
        f"cannot tell the {what} language(s) of {source} from its files; "
        f"say them with {flag} (ISO 639-1 codes, e.g. {flag} de)"
    )


def _restrict_targets(
    codes: dict[str, str], given: Sequence[str], source: Path
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Target languages of a model with target-language tokens (all of them unless given)."""
    if not given:
        return tuple(sorted(codes)), codes
    unknown = [lang for lang in given if lang not in codes]
    if unknown:
        raise StoreError(
            f"{source} has no language token for {', '.join(unknown)}; it can write "
            + ", ".join(sorted(codes))
        )
    return tuple(given), {lang: codes[lang] for lang in given}


# -- OPUS-MT / Marian ------------------------------------------------------------------------


def _opus_codes(tokens: Iterable[str]) -> dict[str, str]:
    parsed = [c for c in (parse_opus(t) for t in tokens) if c is not None]
    return match_codes(parsed)


def convert_marian(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """A Hugging Face Marian checkpoint (``config.json``, ``source.spm``, ``target.spm``,
    ``vocab.json``), e.g. ``Helsinki-NLP/opus-mt-en-de``."""
    _check_task(options)
    config = read_json_object(source / "config.json")
    if config.get("share_encoder_decoder_embeddings") is False or read_json_object(
        source / "tokenizer_config.json"
    ).get("separate_vocabs"):
        raise StoreError(
            f"{source}: Marian models with separate source and target vocabularies are not "
            "supported by CTranslate2's converter"
        )
    for name in ("source.spm", "target.spm"):
        if not (source / name).is_file():
            raise StoreError(f"{source} lacks {name}: not a Hugging Face Marian/OPUS-MT checkpoint")
    tokenizer = _load_hf_tokenizer(source)
    _run_converter(source, target, options.quantization)
    copy_into(target, {"source.spm": source / "source.spm", "target.spm": source / "target.spm"})

    template = _drop_automatic(_probe_template(tokenizer), target)
    hf_vocab = full_vocabulary(tokenizer)
    _check_alignment(_ct2_token_list(target), hf_vocab, source)
    vocabulary = _ct2_vocabulary(target)
    codes = _opus_codes(t for t in hf_vocab if t in vocabulary)
    tok_config = read_json_object(source / "tokenizer_config.json")
    name_src, name_tgt = _languages_from_name(
        str(config.get("_name_or_path", "")), str(config.get("name_or_path", "")),
        source.resolve().name,
    )
    src_lang = tok_config.get("source_lang")
    src_found = _iso_list([src_lang]) if src_lang else None
    sources = _choose_languages(
        options.source_languages, src_found or name_src, "--source", "source", source
    )
    prefix: tuple[str, ...] = template.prefix
    if codes:
        targets, codes = _restrict_targets(codes, options.target_languages, source)
        prefix = ("{tgt}", *prefix)
    else:
        tgt_lang = tok_config.get("target_lang")
        tgt_found = _iso_list([tgt_lang]) if tgt_lang else None
        targets = _choose_languages(
            options.target_languages, tgt_found or name_tgt, "--target", "target", source
        )
    _check_tokens((*template.prefix, *template.suffix), vocabulary, str(source))
    return Manifest(
        name=_default_name(source, options),
        task="translate",
        family="marian",
        source_languages=sources,
        target_languages=targets,
        tokenizer=Tokenizer("sentencepiece", "source.spm", "target.spm"),
        language_codes=codes,
        source_prefix=prefix,
        source_suffix=template.suffix,
        max_input_tokens=_max_input(config, tokenizer),
        max_output_tokens=int(config.get("max_position_embeddings") or 512),
        generation=_generation(source),
        description=f"OPUS-MT/Marian checkpoint {source.resolve().name} (Hugging Face format)",
    )


def _readme_languages(source: Path) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """``* source language(s): de`` / ``* target language(s): en`` lines of an OPUS-MT README."""
    found: dict[str, tuple[str, ...] | None] = {"source": None, "target": None}
    for readme in sorted(source.glob("README*")):
        try:
            text = readme.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for m in _README_LANGS.finditer(text):
            codes = [c for c in re.split(r"[\s,]+", m.group(2).strip()) if c]
            isos = [iso for iso in (to_iso639_1(c) for c in codes) if iso]
            key = m.group(1).lower()
            if isos and found[key] is None:
                found[key] = tuple(dict.fromkeys(isos))
    return found["source"], found["target"]


def convert_marian_native(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """A model folder as released by OPUS-MT for Marian itself: ``decoder.yml`` naming the
    ``.npz`` weights and the ``.yml`` vocabularies, plus ``source.spm``/``target.spm``."""
    import yaml
    from ctranslate2.converters import OpusMTConverter
    from ctranslate2.converters.marian import load_vocab

    _check_task(options)
    decoder_yml = source / "decoder.yml"
    if not decoder_yml.is_file():
        raise StoreError(f"{source} has no decoder.yml: not an OPUS-MT Marian model folder")
    try:
        decoder = yaml.safe_load(decoder_yml.read_text(encoding="utf-8")) or {}
        models, vocabs = list(decoder["models"]), list(decoder["vocabs"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise StoreError(f"cannot read {decoder_yml}: {exc}") from exc
    for name in (*models[:1], *vocabs, "source.spm", "target.spm"):
        if not (source / name).is_file():
            raise StoreError(f"{source} lacks {name} (named by decoder.yml or needed to tokenise)")
    try:
        OpusMTConverter(str(source)).convert(
            str(target), quantization=options.quantization or None, force=True
        )
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        raise StoreError(f"conversion of {source} failed: {exc}") from exc
    copy_into(target, {"source.spm": source / "source.spm", "target.spm": source / "target.spm"})

    config = read_json_object(target / "config.json")
    eos = str(config.get("eos_token", "</s>"))
    suffix: tuple[str, ...] = () if config.get("add_source_eos") else (eos,)
    vocabulary = set(load_vocab(str(source / vocabs[0])))
    codes = _opus_codes(vocabulary)
    readme_src, readme_tgt = _readme_languages(source)
    name_src, name_tgt = _languages_from_name(source.resolve().name)
    sources = _choose_languages(
        options.source_languages, readme_src or name_src, "--source", "source", source
    )
    prefix: tuple[str, ...] = ()
    if codes:
        targets, codes = _restrict_targets(codes, options.target_languages, source)
        prefix = ("{tgt}",)
    else:
        targets = _choose_languages(
            options.target_languages, readme_tgt or name_tgt, "--target", "target", source
        )
    beam = decoder.get("beam-size")
    normalize = decoder.get("normalize")
    generation = Generation(
        beam_size=int(beam) if isinstance(beam, int) and beam > 0 else Generation.beam_size,
        length_penalty=float(normalize) if isinstance(normalize, (int, float)) else 1.0,
    )
    return Manifest(
        name=_default_name(source, options),
        task="translate",
        family="marian",
        source_languages=sources,
        target_languages=targets,
        tokenizer=Tokenizer("sentencepiece", "source.spm", "target.spm"),
        language_codes=codes,
        source_prefix=prefix,
        source_suffix=suffix,
        max_input_tokens=512,
        max_output_tokens=512,
        generation=generation,
        description=f"OPUS-MT model {source.resolve().name} (native Marian format)",
    )


# -- NLLB-200 and M2M100 ---------------------------------------------------------------------


def _family_of(tokenizer: Any, tok_config: dict[str, Any]) -> str:
    declared = str(tok_config.get("tokenizer_class") or type(tokenizer).__name__)
    if declared.startswith("Nllb"):
        return "nllb"
    if declared.startswith("M2M100"):
        return "m2m100"
    vocab = full_vocabulary(tokenizer)
    if any(parse_nllb(t) for t in vocab):
        return "nllb"
    if any(parse_m2m100(t) for t in vocab):
        return "m2m100"
    raise StoreError(f"cannot tell whether this is NLLB or M2M100: tokenizer {declared}")


def _source_template(tokenizer: Any, languages: Sequence[ModelCode], family: str) -> Template:
    """The source template with the source-language token replaced by ``{src}``, checked
    against a second source language so a fixed token is never mistaken for it."""
    templates = []
    for code in languages[:2]:
        # NLLB's tokenizer takes the token itself ("deu_Latn"), M2M100's the bare code ("de").
        tokenizer.src_lang = code.token if family == "nllb" else code.language
        t = _probe_template(tokenizer)
        templates.append(Template(
            tuple("{src}" if tok == code.token else tok for tok in t.prefix),
            tuple("{src}" if tok == code.token else tok for tok in t.suffix),
        ))
    if templates[0] != templates[1]:
        raise StoreError(
            f"the tokenizer's special tokens do not follow the source language: {templates}"
        )
    if "{src}" not in (*templates[0].prefix, *templates[0].suffix):
        raise StoreError("the tokenizer does not mark the source language in its input")
    return templates[0]


def _tokenizer_files(source: Path, target: Path, family: str, tokenizer: Any) -> Tokenizer:
    """NLLB's tokenizer in transformers is the ``tokenizers`` one (``tokenizer.json``) when the
    checkpoint has it; M2M100's is the SentencePiece model. Use the same thing transformers
    uses so the pieces match it."""
    spm = source / "sentencepiece.bpe.model"
    fast = source / "tokenizer.json"
    uses_fast = bool(getattr(tokenizer, "is_fast", False))
    if family == "nllb" and fast.is_file() and uses_fast:
        copy_into(target, {"tokenizer.json": fast})
        return Tokenizer("huggingface", "tokenizer.json", "tokenizer.json")
    if spm.is_file():
        copy_into(target, {"sentencepiece.bpe.model": spm})
        return Tokenizer("sentencepiece", "sentencepiece.bpe.model", "sentencepiece.bpe.model")
    if fast.is_file():
        copy_into(target, {"tokenizer.json": fast})
        return Tokenizer("huggingface", "tokenizer.json", "tokenizer.json")
    raise StoreError(f"{source} has neither sentencepiece.bpe.model nor tokenizer.json")


def convert_m2m100_or_nllb(source: Path, target: Path, options: InstallOptions) -> Manifest:
    """M2M100 (``__de__`` language tokens) or NLLB-200 (``deu_Latn``): the source language
    token goes into the source as the tokenizer places it, the target one starts the output."""
    _check_task(options)
    config = read_json_object(source / "config.json")
    tok_config = read_json_object(source / "tokenizer_config.json")
    tokenizer = _load_hf_tokenizer(source)
    family = _family_of(tokenizer, tok_config)
    parse: Callable[[str], ModelCode | None] = parse_nllb if family == "nllb" else parse_m2m100
    _run_converter(source, target, options.quantization)
    hf_vocab = full_vocabulary(tokenizer)
    _check_alignment(_ct2_token_list(target), hf_vocab, source)
    vocabulary = _ct2_vocabulary(target)
    parsed = [c for c in (parse(t) for t in hf_vocab if t in vocabulary) if c]
    codes = match_codes(parsed, NLLB_CODES if family == "nllb" else None)
    if len(codes) < 2:
        raise StoreError(
            f"{source}: found {len(codes)} language token(s) with an ISO 639-1 code in the "
            "tokenizer; a multilingual model needs at least two"
        )
    by_token = {c.token: c for c in parsed}
    template = _drop_automatic(
        _source_template(tokenizer, [by_token[codes[lang]] for lang in sorted(codes)], family),
        target,
    )
    _check_tokens((*template.prefix, *template.suffix), vocabulary, str(source))
    tokenizer_spec = _tokenizer_files(source, target, family, tokenizer)
    sources = _subset(codes, options.source_languages, source)
    targets = _subset(codes, options.target_languages, source)
    return Manifest(
        name=_default_name(source, options),
        task="translate",
        family=family,
        source_languages=sources,
        target_languages=targets,
        tokenizer=tokenizer_spec,
        language_codes={lang: codes[lang] for lang in sorted({*sources, *targets})},
        source_prefix=template.prefix,
        source_suffix=template.suffix,
        target_prefix=("{tgt}",),
        max_input_tokens=_max_input(config, tokenizer, default=1024),
        max_output_tokens=int(config.get("max_position_embeddings") or 1024),
        generation=_generation(source),
        description=f"{'NLLB-200' if family == 'nllb' else 'M2M100'} checkpoint "
        f"{source.resolve().name}",
    )


def _subset(codes: dict[str, str], given: Sequence[str], source: Path) -> tuple[str, ...]:
    if not given:
        return tuple(sorted(codes))
    unknown = [lang for lang in given if lang not in codes]
    if unknown:
        raise StoreError(
            f"{source} has no language token for {', '.join(unknown)}; it knows "
            + ", ".join(sorted(codes))
        )
    return tuple(given)

