"""Model language codes <-> ISO 639-1, for the converters that fill ``Manifest.language_codes``.

Translation models name languages in their own way: NLLB-200 uses ISO 639-3 plus a script
(``deu_Latn``), M2M100 wraps ISO 639-1 in underscores (``__de__``), multi-target OPUS-MT models
expect a ``>>deu<<`` token (mostly ISO 639-3, sometimes 639-1, optionally with a script or
region). The service only speaks ISO 639-1, so each converter picks, for every ISO 639-1
language, the best of the model's own codes with :func:`match_codes`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dragoman.server.text.languages import ISO_639_1

# ISO 639-1 -> ISO 639-2 codes: the terminology code first, then the bibliographic one when it
# differs (Library of Congress ISO 639-2 list).
ISO_639_2: dict[str, tuple[str, ...]] = {
    "aa": ("aar",), "ab": ("abk",), "ae": ("ave",), "af": ("afr",), "ak": ("aka",),
    "am": ("amh",), "an": ("arg",), "ar": ("ara",), "as": ("asm",), "av": ("ava",),
    "ay": ("aym",), "az": ("aze",), "ba": ("bak",), "be": ("bel",), "bg": ("bul",),
    "bi": ("bis",), "bm": ("bam",), "bn": ("ben",), "bo": ("bod", "tib"), "br": ("bre",),
    "bs": ("bos",), "ca": ("cat",), "ce": ("che",), "ch": ("cha",), "co": ("cos",),
    "cr": ("cre",), "cs": ("ces", "cze"), "cu": ("chu",), "cv": ("chv",), "cy": ("cym", "wel"),
    "da": ("dan",), "de": ("deu", "ger"), "dv": ("div",), "dz": ("dzo",), "ee": ("ewe",),
    "el": ("ell", "gre"), "en": ("eng",), "eo": ("epo",), "es": ("spa",), "et": ("est",),
    "eu": ("eus", "baq"), "fa": ("fas", "per"), "ff": ("ful",), "fi": ("fin",), "fj": ("fij",),
    "fo": ("fao",), "fr": ("fra", "fre"), "fy": ("fry",), "ga": ("gle",), "gd": ("gla",),
    "gl": ("glg",), "gn": ("grn",), "gu": ("guj",), "gv": ("glv",), "ha": ("hau",),
    "he": ("heb",), "hi": ("hin",), "ho": ("hmo",), "hr": ("hrv",), "ht": ("hat",),
    "hu": ("hun",), "hy": ("hye", "arm"), "hz": ("her",), "ia": ("ina",), "id": ("ind",),
    "ie": ("ile",), "ig": ("ibo",), "ii": ("iii",), "ik": ("ipk",), "io": ("ido",),
    "is": ("isl", "ice"), "it": ("ita",), "iu": ("iku",), "ja": ("jpn",), "jv": ("jav",),
    "ka": ("kat", "geo"), "kg": ("kon",), "ki": ("kik",), "kj": ("kua",), "kk": ("kaz",),
    "kl": ("kal",), "km": ("khm",), "kn": ("kan",), "ko": ("kor",), "kr": ("kau",),
    "ks": ("kas",), "ku": ("kur",), "kv": ("kom",), "kw": ("cor",), "ky": ("kir",),
    "la": ("lat",), "lb": ("ltz",), "lg": ("lug",), "li": ("lim",), "ln": ("lin",),
    "lo": ("lao",), "lt": ("lit",), "lu": ("lub",), "lv": ("lav",), "mg": ("mlg",),
    "mh": ("mah",), "mi": ("mri", "mao"), "mk": ("mkd", "mac"), "ml": ("mal",), "mn": ("mon",),
    "mr": ("mar",), "ms": ("msa", "may"), "mt": ("mlt",), "my": ("mya", "bur"), "na": ("nau",),
    "nb": ("nob",), "nd": ("nde",), "ne": ("nep",), "ng": ("ndo",), "nl": ("nld", "dut"),
    "nn": ("nno",), "no": ("nor",), "nr": ("nbl",), "nv": ("nav",), "ny": ("nya",),
    "oc": ("oci",), "oj": ("oji",), "om": ("orm",), "or": ("ori",), "os": ("oss",),
    "pa": ("pan",), "pi": ("pli",), "pl": ("pol",), "ps": ("pus",), "pt": ("por",),
    "qu": ("que",), "rm": ("roh",), "rn": ("run",), "ro": ("ron", "rum"), "ru": ("rus",),
    "rw": ("kin",), "sa": ("san",), "sc": ("srd",), "sd": ("snd",), "se": ("sme",),
    "sg": ("sag",), "si": ("sin",), "sk": ("slk", "slo"), "sl": ("slv",), "sm": ("smo",),
    "sn": ("sna",), "so": ("som",), "sq": ("sqi", "alb"), "sr": ("srp",), "ss": ("ssw",),
    "st": ("sot",), "su": ("sun",), "sv": ("swe",), "sw": ("swa",), "ta": ("tam",),
    "te": ("tel",), "tg": ("tgk",), "th": ("tha",), "ti": ("tir",), "tk": ("tuk",),
    "tl": ("tgl",), "tn": ("tsn",), "to": ("ton",), "tr": ("tur",), "ts": ("tso",),
    "tt": ("tat",), "tw": ("twi",), "ty": ("tah",), "ug": ("uig",), "uk": ("ukr",),
    "ur": ("urd",), "uz": ("uzb",), "ve": ("ven",), "vi": ("vie",), "vo": ("vol",),
    "wa": ("wln",), "wo": ("wol",), "xh": ("xho",), "yi": ("yid",), "yo": ("yor",),
    "za": ("zha",), "zh": ("zho", "chi"), "zu": ("zul",),
}

# ISO 639-3 individual languages that models use for an ISO 639-1 macrolanguage, the usual
# default first (NLLB's Standard Arabic is ``arb``, Standard Malay ``zsm``, and so on).
INDIVIDUAL_LANGUAGES: dict[str, tuple[str, ...]] = {
    "ar": ("arb", "arz", "ary", "apc", "ajp", "acm", "acq", "aeb", "ars"),
    "ay": ("ayr",),
    "az": ("azj", "azb"),
    "et": ("ekk",),
    "fa": ("pes", "prs"),
    "ff": ("fuv", "fuc"),
    "kr": ("knc",),
    "ku": ("kmr", "ckb"),
    "lv": ("lvs", "ltg"),
    "mg": ("plt",),
    "mn": ("khk",),
    "ms": ("zsm",),
    "ne": ("npi",),
    "no": ("nob", "nno"),
    "om": ("gaz",),
    "or": ("ory",),
    "ps": ("pbt", "pst"),
    "qu": ("quy",),
    "sq": ("als",),
    "sw": ("swh",),
    "uz": ("uzn",),
    "yi": ("ydd",),
    "zh": ("cmn", "yue"),
}

# ISO 639-1 -> the NLLB-200 code used by default where NLLB has several for one language.
NLLB_CODES: dict[str, str] = {
    "af": "afr_Latn", "ak": "aka_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng",
    "ay": "ayr_Latn", "az": "azj_Latn", "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl",
    "bm": "bam_Latn", "bn": "ben_Beng", "bo": "bod_Tibt", "bs": "bos_Latn", "ca": "cat_Latn",
    "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn", "de": "deu_Latn", "dz": "dzo_Tibt",
    "ee": "ewe_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn", "es": "spa_Latn",
    "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "ff": "fuv_Latn", "fi": "fin_Latn",
    "fj": "fij_Latn", "fo": "fao_Latn", "fr": "fra_Latn", "ga": "gle_Latn", "gd": "gla_Latn",
    "gl": "glg_Latn", "gn": "grn_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "he": "heb_Hebr",
    "hi": "hin_Deva", "hr": "hrv_Latn", "ht": "hat_Latn", "hu": "hun_Latn", "hy": "hye_Armn",
    "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn", "it": "ita_Latn", "ja": "jpn_Jpan",
    "jv": "jav_Latn", "ka": "kat_Geor", "kg": "kon_Latn", "ki": "kik_Latn", "kk": "kaz_Cyrl",
    "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "kr": "knc_Latn", "ks": "kas_Arab",
    "ku": "kmr_Latn", "ky": "kir_Cyrl", "lb": "ltz_Latn", "lg": "lug_Latn", "li": "lim_Latn",
    "ln": "lin_Latn", "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn",
    "mi": "mri_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr", "nb": "nob_Latn", "ne": "npi_Deva",
    "nl": "nld_Latn", "nn": "nno_Latn", "no": "nob_Latn", "ny": "nya_Latn", "oc": "oci_Latn",
    "om": "gaz_Latn", "or": "ory_Orya", "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab",
    "pt": "por_Latn", "qu": "quy_Latn", "rn": "run_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl",
    "rw": "kin_Latn", "sa": "san_Deva", "sc": "srd_Latn", "sd": "snd_Arab", "sg": "sag_Latn",
    "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn", "sm": "smo_Latn", "sn": "sna_Latn",
    "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl", "ss": "ssw_Latn", "st": "sot_Latn",
    "su": "sun_Latn", "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu",
    "tg": "tgk_Cyrl", "th": "tha_Thai", "ti": "tir_Ethi", "tk": "tuk_Latn", "tl": "tgl_Latn",
    "tn": "tsn_Latn", "tr": "tur_Latn", "ts": "tso_Latn", "tt": "tat_Cyrl", "tw": "twi_Latn",
    "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn",
    "wo": "wol_Latn", "xh": "xho_Latn", "yi": "ydd_Hebr", "yo": "yor_Latn", "zh": "zho_Hans",
    "zu": "zul_Latn",
}

_NLLB_RE = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")
_M2M100_RE = re.compile(r"^__([a-z]{2,3})__$")
_OPUS_RE = re.compile(r"^>>([A-Za-z]{2,3})(?:_([A-Za-z0-9]+))?<<$")


@dataclass(frozen=True)
class ModelCode:
    """A language token of a model split into its language part and an optional variant
    (script such as ``Latn`` or region such as ``BR``)."""

    token: str
    language: str
    variant: str = ""


def parse_nllb(token: str) -> ModelCode | None:
    m = _NLLB_RE.match(token)
    return ModelCode(token, m.group(1), m.group(2)) if m else None


def parse_m2m100(token: str) -> ModelCode | None:
    m = _M2M100_RE.match(token)
    return ModelCode(token, m.group(1)) if m else None


def parse_opus(token: str) -> ModelCode | None:
    m = _OPUS_RE.match(token)
    return ModelCode(token, m.group(1).lower(), m.group(2) or "") if m else None


def candidates(language: str) -> tuple[str, ...]:
    """Codes that name ``language`` (ISO 639-1), best first: itself, ISO 639-2, individuals."""
    return (language, *ISO_639_2.get(language, ()), *INDIVIDUAL_LANGUAGES.get(language, ()))


def _reverse() -> dict[str, str]:
    table: dict[str, str] = {}
    for tier in (
        {lang: (lang,) for lang in ISO_639_1},
        ISO_639_2,
        INDIVIDUAL_LANGUAGES,
    ):
        for lang, codes in tier.items():
            for code in codes:
                table.setdefault(code, lang)
    return table


_TO_ISO_639_1 = _reverse()


def to_iso639_1(code: str) -> str | None:
    """ISO 639-1 code for a 2- or 3-letter code (``deu`` -> ``de``, ``arb`` -> ``ar``), or
    None when the language has no ISO 639-1 code. Script/region suffixes are ignored."""
    base = re.split(r"[-_]", code.strip(), maxsplit=1)[0].lower()
    return _TO_ISO_639_1.get(base)


def match_codes(
    codes: Iterable[ModelCode], preferred: Mapping[str, str] | None = None
) -> dict[str, str]:
    """ISO 639-1 -> the model token to use for it, for every language the tokens cover.

    ``preferred`` (e.g. :data:`NLLB_CODES`) wins where the model has that token. Otherwise a
    token without a variant beats one with (``>>por<<`` before ``>>pt_BR<<``), then the one
    whose language part comes first in :func:`candidates`, then variants alphabetically
    (``zho_Hans`` before ``zho_Hant``).
    """
    by_language: dict[str, list[ModelCode]] = {}
    for code in codes:
        by_language.setdefault(code.language, []).append(code)
    tokens = {c.token for group in by_language.values() for c in group}
    result: dict[str, str] = {}
    for language in ISO_639_1:
        wanted = (preferred or {}).get(language)
        if wanted and wanted in tokens:
            result[language] = wanted
            continue
        ranked = [
            (code.variant != "", rank, code.variant.lower(), code.token)
            for rank, candidate in enumerate(candidates(language))
            for code in by_language.get(candidate, ())
        ]
        if ranked:
            result[language] = min(ranked)[3]
    return result
