"""Language detection: ISO 639-1 answers, restriction to allowed languages, thread safety."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dragoman.server.errors import InvalidInput
from dragoman.server.text.langdetect import (
    Detection,
    detect_language,
    detectable_languages,
)
from dragoman.server.text.languages import ISO_639_1, base_language, is_language_code

SAMPLES = {
    "en": "The weather was cold this morning, so most people stayed at home and read the newspaper.",
    "de": "Das Wetter war heute Morgen kalt, deshalb blieben die meisten Leute zu Hause und lasen Zeitung.",
    "fr": "Il faisait froid ce matin, alors la plupart des gens sont restés chez eux pour lire le journal.",
    "es": "Hacía frío esta mañana, así que la mayoría de la gente se quedó en casa leyendo el periódico.",
    "ru": "Сегодня утром было холодно, поэтому большинство людей остались дома и читали газету.",
    "zh": "今天早上天气很冷，所以大多数人都待在家里看报纸。",
    "ja": "今朝はとても寒かったので、ほとんどの人は家にいて新聞を読んでいました。",
    "ar": "كان الجو باردا هذا الصباح، لذلك بقي معظم الناس في البيت يقرأون الصحيفة.",
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_detects_common_languages(language: str) -> None:
    detection = detect_language(SAMPLES[language])
    assert detection.language == language
    assert detection.confidence > 0.5
    assert detection.candidates[0].language == language


def test_result_shape_and_probabilities() -> None:
    detection = detect_language(SAMPLES["de"], top=5)
    assert isinstance(detection, Detection)
    assert len(detection.candidates) == 5
    confidences = [c.confidence for c in detection.candidates]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert sum(confidences) <= 1.0 + 1e-9
    assert detection.confidence == confidences[0]
    assert all(is_language_code(c.language) for c in detection.candidates)


def test_allowed_restricts_and_renormalises() -> None:
    detection = detect_language(SAMPLES["de"], allowed=["en", "fr"], top=3)
    assert {c.language for c in detection.candidates} == {"en", "fr"}
    assert sum(c.confidence for c in detection.candidates) == pytest.approx(1.0)


def test_allowed_accepts_regional_tags_and_ignores_undetectable_codes() -> None:
    detection = detect_language(SAMPLES["es"], allowed=["es-MX", "pt-BR", "ii"])
    assert detection.language == "es"
    assert {c.language for c in detection.candidates} <= {"es", "pt"}


def test_allowed_with_no_detectable_language_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="knows none of the allowed languages"):
        detect_language(SAMPLES["en"], allowed=["ii", "xx"])
    with pytest.raises(InvalidInput, match="knows none of the allowed languages"):
        detect_language(SAMPLES["en"], allowed=[])


def test_varieties_count_for_their_iso_639_1_language() -> None:
    # Cantonese is a variety of zh in ISO 639-1 terms: its probability counts for zh.
    assert detect_language("佢哋今日去咗街市買餸，好多嘢食。").language == "zh"


@pytest.mark.parametrize("text", ["", "   ", "12345 67", "!!! ??? ...", "😀👍", "\n\t"])
def test_text_without_letters_is_rejected(text: str) -> None:
    with pytest.raises(InvalidInput, match="no letters"):
        detect_language(text)


def test_text_without_any_feature_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="too little text"):
        detect_language("ok")


def test_top_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="top must be at least 1"):
        detect_language(SAMPLES["en"], top=0)


def test_detection_is_thread_safe() -> None:
    jobs = [(text, allowed) for text in SAMPLES.values() for allowed in (None, ["en", "de"], ["zh", "ja"])]
    expected = [detect_language(text, allowed) for text, allowed in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            assert list(pool.map(lambda job: detect_language(*job), jobs)) == expected


def test_import_does_no_work() -> None:
    server = Path(__file__).resolve().parents[1] / "server"
    code = (
        "import sys\n"
        "import dragoman.server.text.langdetect as m\n"
        "assert m._model is None\n"
        "assert 'py3langid.langid' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(server)})


def test_detector_only_answers_iso_639_1_codes() -> None:
    languages = detectable_languages()
    assert len(languages) > 90
    assert all(is_language_code(code) for code in languages)


def test_iso_639_1_table() -> None:
    assert len(ISO_639_1) == 183
    assert all(len(code) == 2 and code.islower() for code in ISO_639_1)
    assert is_language_code("en") and is_language_code("zu") and is_language_code("nb")
    assert not is_language_code("EN")
    assert not is_language_code("eng")
    assert not is_language_code("xx")
    assert not is_language_code("")


@pytest.mark.parametrize(
    ("tag", "base"), [("pt-BR", "pt"), ("zh_Hant", "zh"), ("EN", "en"), (" de ", "de"), ("sr-Latn-RS", "sr")]
)
def test_base_language(tag: str, base: str) -> None:
    assert base_language(tag) == base
