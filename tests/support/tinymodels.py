"""Tiny CTranslate2 models built offline, for the test suite and the benchmarks.

No model weights can be downloaded where the tests run, so we wire our own:

* :func:`build_copy_model` - a hand-set one-layer Transformer whose translation is exactly
  its source (or a fixed piece-to-piece bijection of it, e.g. :func:`swapcase_mapping`), so
  tests can assert exact output through the real CTranslate2 path: greedy and beam search,
  mixed-length batches, int8 and float32.
* :func:`build_random_model` - an OPUS-MT-sized random Transformer for benchmarks. Its tokens
  are garbage, but it emits ``</s>`` exactly when the source ends, so output length equals
  source length and decoding cost is realistic.
* :func:`build_argos_package` - an Argos Translate ``.argosmodel`` zip around such a model.

Conventions shared by both model builders (they mirror converted OPUS-MT models):
the vocabulary is the SentencePiece model's pieces in id order (shared source/target), the
config sets ``add_source_eos`` so callers feed plain ``sp.encode(text, out_type=str)``
pieces, and the decoder starts from ``<s>``. Pieces that are not in the vocabulary (e.g. a
character SentencePiece never saw, which ``out_type=str`` returns verbatim) reach the model
as ``<unk>``; the copy model returns ``<unk>`` there, or the original piece when called
with ``replace_unknowns=True`` (its attention is sharp, so the alignment is exact).
"""

from __future__ import annotations

import json
import logging
import math
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import common_spec, transformer_spec

logger = logging.getLogger(__name__)

_BASE_LINES_TEXT = r"""
The city council approved the new budget on Tuesday evening.
Heavy rain is expected across the north of the country this weekend.
Scientists have discovered a new species of frog in the rainforest.
The company reported a profit of 4.2 million euros in the third quarter.
Thousands of people gathered in the square to celebrate the victory.
The minister said the reform would take effect on 1 January 2025.
Prices for electricity rose by 12% compared with last year.
Police are asking witnesses to come forward with any information.
The museum will reopen its doors after two years of renovation.
A spokesperson declined to comment on the ongoing investigation.
Researchers at the university published their findings in a journal.
The train from Berlin to Munich was delayed by almost three hours.
Local farmers are worried about the long period of dry weather.
The festival attracts more than 50,000 visitors every summer.
Negotiations between the unions and employers ended without agreement.
The hospital has hired 120 additional nurses since March.
Voters will decide on the proposal in a referendum next month.
The bridge was closed to traffic after engineers found cracks.
Our correspondent reports from the capital, where tension is rising.
The central bank kept interest rates unchanged at 3.75 percent.
Fans waited outside the stadium for hours before the final match.
The author's latest novel tells the story of a family in exile.
Schools in the region will stay closed because of the storm.
The government wants to build 400,000 new homes per year.
He was born in 1962 and studied law in Hamburg and Paris.
"We are not going to give up," she told reporters on Monday.
The report warns that sea levels could rise faster than expected.
Shares in the carmaker fell sharply after the announcement.
The orchestra performed works by Bach, Mozart and Beethoven.
Emergency services responded to the fire at 2:45 a.m.
The airport expects record passenger numbers over the holidays.
Why did the project cost twice as much as planned?
Read more: How the new law affects tenants and landlords.
The quick brown fox jumps over the lazy dog.
Is this the right way to the old town hall?
Yesterday I bought bread, cheese, apples and a bottle of water.
My brother works as a journalist for a small newspaper.
We will meet again next Friday at half past seven.
The children played in the garden until it got dark.
Please send the documents by e-mail before the deadline.
The weather today is sunny with a light wind from the west.
Open-source software is used by millions of developers.
The conference takes place from 3 to 5 June in Vienna.
According to the survey, 63% of respondents support the plan.
The river flooded several villages in the valley overnight.
She won the gold medal in the 200 metres freestyle.
The new smartphone costs $999 and goes on sale in October.
Experts disagree about the causes of the economic slowdown.
The mayor promised better public transport and cleaner streets.
It was the warmest October since records began in 1881.
The film premiered at the festival and received a standing ovation.
Doctors recommend at least 30 minutes of exercise a day.
The suspect was arrested at the border on Saturday morning.
Many young people are moving from rural areas to the cities.
The library offers free courses in English, German and Spanish.
Visit www.example.com/news for updates and live coverage.
Contact us at info@example.org or call +49 30 1234567.
The score was 3-1 after extra time; the coach was delighted.
Question: what is 7 x 8? Answer: 56.
Chapter 4, section 2 (pages 117-132) explains the method.
Der Stadtrat hat am Dienstagabend den neuen Haushalt beschlossen.
Am Wochenende wird im Norden des Landes starker Regen erwartet.
Forscher haben im Regenwald eine neue Froschart entdeckt.
Das Unternehmen meldete im dritten Quartal einen Gewinn von 4,2 Millionen Euro.
Tausende Menschen versammelten sich auf dem Platz, um den Sieg zu feiern.
Der Minister sagte, die Reform trete am 1. Januar 2025 in Kraft.
Die Strompreise stiegen im Vergleich zum Vorjahr um 12 Prozent.
Die Polizei bittet Zeugen, sich mit Hinweisen zu melden.
Das Museum öffnet nach zwei Jahren Renovierung wieder seine Türen.
Eine Sprecherin wollte sich zu den laufenden Ermittlungen nicht äußern.
Der Zug von Berlin nach München hatte fast drei Stunden Verspätung.
Die Landwirte sind wegen der langen Trockenheit besorgt.
Das Festival zieht jeden Sommer mehr als 50.000 Besucher an.
Die Verhandlungen zwischen Gewerkschaften und Arbeitgebern blieben ohne Einigung.
Das Krankenhaus hat seit März 120 zusätzliche Pflegekräfte eingestellt.
Die Wähler entscheiden im nächsten Monat in einer Volksabstimmung über den Vorschlag.
Die Brücke wurde für den Verkehr gesperrt, nachdem Ingenieure Risse gefunden hatten.
Die Zentralbank ließ die Leitzinsen unverändert bei 3,75 Prozent.
Die Fans warteten stundenlang vor dem Stadion auf das Endspiel.
Der neue Roman der Autorin erzählt die Geschichte einer Familie im Exil.
Die Schulen in der Region bleiben wegen des Sturms geschlossen.
Die Regierung will jedes Jahr 400.000 neue Wohnungen bauen.
Er wurde 1962 geboren und studierte Jura in Hamburg und Paris.
„Wir werden nicht aufgeben“, sagte sie am Montag vor Journalisten.
Der Bericht warnt, dass der Meeresspiegel schneller steigen könnte als erwartet.
Die Aktien des Autobauers fielen nach der Ankündigung deutlich.
Das Orchester spielte Werke von Bach, Mozart und Beethoven.
Die Feuerwehr rückte um 2:45 Uhr zu dem Brand aus.
Der Flughafen erwartet über die Feiertage einen Passagierrekord.
Warum hat das Projekt doppelt so viel gekostet wie geplant?
Lesen Sie auch: Was das neue Gesetz für Mieter und Vermieter bedeutet.
Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.
Ist das der richtige Weg zum alten Rathaus?
Gestern habe ich Brot, Käse, Äpfel und eine Flasche Wasser gekauft.
Mein Bruder arbeitet als Journalist für eine kleine Zeitung.
Wir treffen uns nächsten Freitag um halb acht wieder.
Die Kinder spielten im Garten, bis es dunkel wurde.
Bitte schicken Sie die Unterlagen vor Ablauf der Frist per E-Mail.
Das Wetter ist heute sonnig bei leichtem Wind aus Westen.
Die Konferenz findet vom 3. bis 5. Juni in Wien statt.
Laut der Umfrage unterstützen 63 % der Befragten den Plan.
Der Fluss überflutete über Nacht mehrere Dörfer im Tal.
Sie gewann die Goldmedaille über 200 Meter Freistil.
Das neue Smartphone kostet 999 Euro und kommt im Oktober in den Handel.
Experten sind sich über die Ursachen der wirtschaftlichen Abkühlung uneinig.
Der Bürgermeister versprach besseren Nahverkehr und sauberere Straßen.
Es war der wärmste Oktober seit Beginn der Aufzeichnungen im Jahr 1881.
Ärzte empfehlen mindestens 30 Minuten Bewegung pro Tag.
Der Verdächtige wurde am Samstagmorgen an der Grenze festgenommen.
Viele junge Menschen ziehen vom Land in die Städte.
Die Bibliothek bietet kostenlose Kurse in Englisch, Deutsch und Spanisch an.
Über die Öffnungszeiten informiert die Gemeinde auf ihrer Website.
Größere Städte müssen mehr Geld für Straßen und Schulen ausgeben.
Der Übergang zur neuen Software verlief ohne größere Störungen.
Das Ergebnis lautete 3:1 nach Verlängerung; der Trainer war begeistert.
Frage: Was ist 7 × 8? Antwort: 56.
Kapitel 4, Abschnitt 2 (Seiten 117–132) erklärt die Methode.
Die Straße ist wegen Bauarbeiten bis Ende Mai gesperrt – Umleitungen sind ausgeschildert.
Weitere Informationen gibt es unter www.beispiel.de/nachrichten.
Die Grünen fordern mehr Investitionen in Bus und Bahn.
Im Süden Bayerns fiel in der Nacht der erste Schnee.
Die Mannschaft verlor das Spiel trotz einer frühen Führung.
Was kostet ein Ticket für das Konzert am Samstag?
Das Gericht wies die Klage als unbegründet ab.
Während der Pandemie arbeiteten viele Beschäftigte von zu Hause aus.
Die Ausstellung zeigt Gemälde aus dem 19. Jahrhundert.
Straßenbahnen fahren am Sonntag nur alle 20 Minuten.
Le président a annoncé une réforme des retraites.
El gobierno presentó un nuevo plan económico en Madrid.
Café, crème brûlée and jalapeño: a menu with ç, é, è, à and ñ.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2,718 -42 +7 1/2
Symbols: ! " # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \ ] ^ _ ` { | } ~
Quotes and dashes: ‚einfach‘ „doppelt“ “double” ‘single’ – — … € £ § °
ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz ÄÖÜ äöüß
Q: Who? A: Nobody. X-ray, yacht, quiz, jazz, zebra, vexing, KZ.
Tel. 030/987 65 43, Fax -44; ISBN 978-3-16-148410-0.
Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday.
Montag, Dienstag, Mittwoch, Donnerstag, Freitag, Samstag, Sonntag.
January February March April May June July August September October November December
"""

# The test corpus, public: tests and bench/ build their documents from it.
BASE_LINES: list[str] = [line for line in _BASE_LINES_TEXT.splitlines() if line]

COPY_CORPUS: list[str] = BASE_LINES + [line.swapcase() for line in BASE_LINES]
"""English and German news-style lines with digits and punctuation, each also swap-cased.

The swap-cased half makes a vocabulary trained on it close to case-symmetric, so
:func:`swapcase_mapping` moves most pieces and a mapped copy model visibly "translates".
"""

_LAYER_NORM_EPSILON = 1e-6
_MAX_ONE_HOT_VOCABULARY = 128  # larger vocabularies get dense +-1 token codes instead
_MAX_COPY_VOCABULARY = 8192
_MAX_CODE_OVERLAP = 0.3  # keeps every wrong token >= 0.45 * _OUTPUT_LOGIT below the right one
_ATTENTION_LOGIT_GAP = 30.0  # logit margin between the aligned source position and any other
_OUTPUT_LOGIT = 30.0  # logit of the copied token
_SUPPRESSED_LOGIT_BIAS = -1000.0


def train_sentencepiece(
    lines: Iterable[str],
    prefix: Path,
    vocab_size: int = 300,
    model_type: str = "unigram",
    user_defined_symbols: Sequence[str] = (),
) -> Path:
    """Train a SentencePiece model on ``lines`` and return the path of ``<prefix>.model``.

    Deterministic (one thread, no sampling or shuffling): the same lines give the same
    pieces and scores (the file also records ``prefix``). Ids 0/1/2 are ``<unk>``, ``<s>``
    and ``</s>`` as in OPUS-MT vocabularies; every character seen is kept. ``vocab_size``
    is an upper bound: a corpus too small for it yields a smaller vocabulary rather than
    an error (but one smaller than its distinct characters is an error).
    """
    sentences = [line for line in lines if line.strip()]
    if not sentences:
        raise ValueError("train_sentencepiece needs at least one non-empty line")
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        user_defined_symbols=list(user_defined_symbols),
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    model_path = prefix.with_name(prefix.name + ".model")
    logger.info("trained SentencePiece %s model %s on %d lines", model_type, model_path, len(sentences))
    return model_path


def sentencepiece_pieces(sp_model: Path) -> list[str]:
    """The pieces of a SentencePiece model in id order (the models' vocabulary)."""
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def swapcase_mapping(sp_model: Path) -> Callable[[str], str]:
    """A piece bijection for :func:`build_copy_model`: each piece to its swap-cased twin.

    A piece moves only when its swap-cased form is also a piece and swapping back returns
    it (so the map is an involution, hence a bijection); all other pieces, and control and
    unknown pieces, map to themselves. Text made only of paired pieces comes out of the
    mapped copy model as ``text.swapcase()``.
    """
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    special = {i for i in range(processor.get_piece_size()) if processor.is_control(i) or processor.is_unknown(i)}
    pieces = {processor.id_to_piece(i) for i in range(processor.get_piece_size()) if i not in special}
    table: dict[str, str] = {}
    for piece in pieces:
        twin = piece.swapcase()
        if twin != piece and twin in pieces and twin.swapcase() == piece:
            table[piece] = twin

    def mapping(piece: str) -> str:
        return table.get(piece, piece)

    return mapping


@dataclass(frozen=True)
class _Vocabulary:
    """Model vocabulary: SentencePiece pieces, then any extra tokens, plus special ids."""

    tokens: list[str]
    unk: str
    bos: str
    eos: str
    fixed_ids: frozenset[int]  # ids every mapping must leave in place

    @property
    def eos_id(self) -> int:
        return self.tokens.index(self.eos)


def _load_vocabulary(sp_model: Path, extra_tokens: Sequence[str] = ()) -> _Vocabulary:
    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    if processor.bos_id() < 0 or processor.eos_id() < 0 or processor.unk_id() < 0:
        raise ValueError(f"{sp_model} must define <unk>, <s> and </s> pieces")
    tokens = sentencepiece_pieces(sp_model)
    fixed = {i for i in range(len(tokens)) if processor.is_control(i) or processor.is_unknown(i)}
    for token in extra_tokens:
        if token not in tokens:
            tokens.append(token)
        fixed.add(tokens.index(token))
    return _Vocabulary(
        tokens=tokens,
        unk=processor.id_to_piece(processor.unk_id()),
        bos=processor.id_to_piece(processor.bos_id()),
        eos=processor.id_to_piece(processor.eos_id()),
        fixed_ids=frozenset(fixed),
    )


def _permutation(vocab: _Vocabulary, mapping: Callable[[str], str] | None) -> np.ndarray:
    """Output id for each source id; checks that ``mapping`` is a bijection fixing specials."""
    size = len(vocab.tokens)
    if mapping is None:
        return np.arange(size)
    index = {token: i for i, token in enumerate(vocab.tokens)}
    targets = np.empty(size, dtype=np.int64)
    for i, token in enumerate(vocab.tokens):
        mapped = mapping(token)
        if mapped not in index:
            raise ValueError(f"mapping sends {token!r} to {mapped!r}, which is not in the vocabulary")
        if i in vocab.fixed_ids and mapped != token:
            raise ValueError(f"mapping must leave special token {token!r} unchanged, got {mapped!r}")
        targets[i] = index[mapped]
    if len(set(targets.tolist())) != size:
        raise ValueError("mapping is not a bijection over the vocabulary pieces")
    return targets


def _token_codes(vocab_size: int) -> np.ndarray:
    """Unit-norm identity code per token, kept short because d_model sets the decoding cost.

    Small vocabularies get one-hot codes; larger ones balanced +-1 codes whose pairwise
    overlap is at most ``_MAX_CODE_OVERLAP`` (drawn greedily from a fixed seed). Every code
    has the same sum and norm, which keeps layer-norm statistics constant.
    """
    if vocab_size <= _MAX_ONE_HOT_VOCABULARY:
        return np.eye(vocab_size, dtype=np.float32)
    if vocab_size > _MAX_COPY_VOCABULARY:
        raise ValueError(f"copy models support at most {_MAX_COPY_VOCABULARY} pieces, got {vocab_size}")
    size = 128 if vocab_size <= 1024 else 256
    rng = np.random.default_rng(1234)
    signs = np.repeat(np.array([1.0, -1.0], dtype=np.float32), size // 2) / math.sqrt(size)
    accepted = np.empty((0, size), dtype=np.float32)
    while len(accepted) < vocab_size:
        candidates = rng.permuted(np.tile(signs, (256, 1)), axis=1)
        if len(accepted):
            candidates = candidates[np.abs(candidates @ accepted.T).max(axis=1) <= _MAX_CODE_OVERLAP]
        overlaps = np.abs(candidates @ candidates.T)
        kept: list[int] = []
        for i in range(len(candidates)):
            if all(overlaps[i, j] <= _MAX_CODE_OVERLAP for j in kept):
                kept.append(i)
        accepted = np.concatenate([accepted, candidates[kept][: vocab_size - len(accepted)]])
    return accepted


@dataclass(frozen=True)
class _PositionCode:
    """Factored one-hot position code: position p lights dim (p mod base) and (p div base).

    Two matching dims score 2, one 1, none 0, so attention that scales the match by a
    large factor picks the exact position while needing only 2*sqrt(positions) dims.
    """

    offset: int
    base: int

    @classmethod
    def covering(cls, offset: int, positions: int) -> _PositionCode:
        return cls(offset=offset, base=max(2, math.ceil(math.sqrt(positions))))

    @property
    def dims(self) -> slice:
        return slice(self.offset, self.offset + 2 * self.base)

    @property
    def capacity(self) -> int:
        return self.base * self.base

    def encode(self, position: int, d_model: int, value: float = 1.0) -> np.ndarray:
        row = np.zeros(d_model, dtype=np.float32)
        position %= self.capacity
        row[self.offset + position % self.base] = value
        row[self.offset + self.base + position // self.base] = value
        return row


def _identity_layer_norm(norm_spec: common_spec.LayerNormSpec, samples: np.ndarray) -> None:
    """Set gamma/beta so the layer norm returns its input for vectors like ``samples``.

    Valid because every vector reaching that norm has the same mean and variance.
    """
    means, variances = samples.mean(axis=1), samples.var(axis=1)
    if np.ptp(means) > 1e-6 or np.ptp(variances) > 1e-6:
        raise AssertionError("layer-norm inputs must share mean and variance")
    d_model = samples.shape[1]
    norm_spec.gamma = np.full(d_model, math.sqrt(variances[0] + _LAYER_NORM_EPSILON), dtype=np.float32)
    norm_spec.beta = np.full(d_model, means[0], dtype=np.float32)


def _plain_layer_norm(norm_spec: common_spec.LayerNormSpec, d_model: int) -> None:
    norm_spec.gamma = np.ones(d_model, dtype=np.float32)
    norm_spec.beta = np.zeros(d_model, dtype=np.float32)


_Layer: TypeAlias = transformer_spec.TransformerEncoderLayerSpec | transformer_spec.TransformerDecoderLayerSpec


def _inert_sublayers(layer: _Layer, d_model: int, ffn: int) -> None:
    """Self-attention and feed-forward that add nothing to the residual stream."""
    _plain_layer_norm(layer.self_attention.layer_norm, d_model)
    layer.self_attention.linear[0].weight = np.zeros((3 * d_model, d_model), dtype=np.float32)
    layer.self_attention.linear[1].weight = np.zeros((d_model, d_model), dtype=np.float32)
    _plain_layer_norm(layer.ffn.layer_norm, d_model)
    layer.ffn.linear_0.weight = np.zeros((ffn, d_model), dtype=np.float32)
    layer.ffn.linear_1.weight = np.zeros((d_model, ffn), dtype=np.float32)


def _install_missing_prefix_gate(
    ffn: transformer_spec.FeedForwardSpec,
    codes: np.ndarray,
    eos_id: int,
    second_step: int,
    other_input: int,
    d_model: int,
) -> None:
    """Feed-forward that swaps the copied token for </s> at the second step if no prefix was fed.

    ReLU units gated by ``second_step + other_input - 2 >= 0`` (both flags set) pass the
    copied code's positive and negative parts, which are subtracted, plus a unit that adds
    the </s> code; at every other step all units are exactly zero.
    """
    code_size = codes.shape[1]
    gate = 2.0  # exceeds any code entry, so a half-open gate still clamps to zero
    hidden = 2 * code_size + 1
    inputs = np.zeros((hidden, d_model), dtype=np.float32)
    bias = np.full(hidden, -2.0 * gate, dtype=np.float32)
    inputs[:, [second_step, other_input]] = gate
    inputs[np.arange(code_size), np.arange(code_size)] = 1.0
    inputs[code_size + np.arange(code_size), np.arange(code_size)] = -1.0
    bias[-1] += 1.0
    outputs = np.zeros((d_model, hidden), dtype=np.float32)
    outputs[np.arange(code_size), np.arange(code_size)] = -1.0
    outputs[np.arange(code_size), code_size + np.arange(code_size)] = 1.0
    outputs[:code_size, -1] = codes[eos_id]
    ffn.linear_0.weight, ffn.linear_0.bias = inputs, bias
    ffn.linear_1.weight = outputs


def _new_spec(layers: int, heads: int, vocab: _Vocabulary) -> transformer_spec.TransformerSpec:
    spec = transformer_spec.TransformerSpec.from_config((layers, layers), heads)
    spec.config.layer_norm_epsilon = _LAYER_NORM_EPSILON
    spec.config.add_source_eos = True
    spec.config.unk_token = vocab.unk
    spec.config.bos_token = vocab.bos
    spec.config.eos_token = vocab.eos
    spec.config.decoder_start_token = vocab.bos
    spec.encoder.scale_embeddings = False
    spec.decoder.scale_embeddings = False
    return spec


def _save(spec: transformer_spec.TransformerSpec, vocab: _Vocabulary, out_dir: Path, quantization: str | None) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"model directory {out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.register_source_vocabulary(vocab.tokens)
    spec.register_target_vocabulary(vocab.tokens)
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(out_dir))
    return out_dir


def build_copy_model(
    out_dir: Path,
    sp_model: Path,
    *,
    mapping: Callable[[str], str] | None = None,
    quantization: str | None = "int8",
    max_positions: int = 512,
    target_prefix_tokens: Sequence[str] = (),
    order: Callable[[int], int] | None = None,
) -> Path:
    """Build a CTranslate2 model that translates a piece sequence into itself, mapped.

    Contract (greedy or beam search, any batch mix, any compute type):
    ``translate_batch([pieces])[0].hypotheses[0] == [mapping(p) for p in pieces]`` where
    ``pieces = sp.encode(text, out_type=str)`` - callers feed plain pieces; the config's
    ``add_source_eos`` appends ``</s>``, which the model copies to stop. Sources may hold
    up to ``max_positions`` pieces; longer ones make CTranslate2 raise ``RuntimeError``
    ("No position encodings ..."). CTranslate2's default ``max_decoding_length`` (256)
    cuts longer outputs, so pass ``max_decoding_length >= len(pieces) + 2``; values above
    ``max(1024, 2 * max_positions + 4)`` raise.

    With ``target_prefix_tokens`` (added to the vocabulary when SentencePiece lacks them)
    the model expects exactly one of them as ``target_prefix=[[token]]`` and returns
    ``[token] + mapped pieces``. Called without a prefix it returns ``["<unk>"]`` (nothing
    with ``min_decoding_length=0``), so a caller that forgets the prefix is caught.

    How: token identity rides the residual stream; one cross-attention head, queried with
    factored one-hot position codes, attends to source position t at decoder step t (t-1
    after a prefix; a feed-forward gate turns the second step into </s> when its input is
    not a prefix token); the output projection maps the copied identity to mapping(token).
    Layer norms are set to identity (every vector has fixed statistics by construction)
    and the remaining sublayers are zero, so int8 weights and activations stay exact.

    With ``order`` (not with a prefix), output step t copies source piece ``order(t)``
    instead of piece t: a word-order-changing "translation" whose alignment is known
    exactly (its one attention head is the alignment). Decoding ends at the first step
    whose ``order(t)`` is no source piece. ``order=lambda t: t ^ 1`` swaps adjacent pieces;
    give it an even number of pieces (with an odd number the last one is dropped).
    """
    started = time.perf_counter()
    if max_positions < 1:
        raise ValueError("max_positions must be positive")
    vocab = _load_vocabulary(Path(sp_model), target_prefix_tokens)
    targets = _permutation(vocab, mapping)
    codes = _token_codes(len(vocab.tokens))
    code_size = codes.shape[1]
    vocab_size = len(vocab.tokens)
    prefix_ids = [vocab.tokens.index(token) for token in target_prefix_tokens]
    shift = 1 if prefix_ids else 0

    source_positions = max_positions + 1  # the pieces plus the appended </s>
    position = _PositionCode.covering(code_size, source_positions)
    # One-hot flags, exactly one per group set in every decoder vector (fixed statistics):
    # step group - first step, second step, later steps; input group - prefix token or not.
    first_step, second_step, later_step, prefix_input, other_input = range(position.dims.stop, position.dims.stop + 5)
    if order is not None and prefix_ids:
        raise ValueError("order and target_prefix_tokens cannot be combined")
    # With ``order``: source </s> carries a key flag (every other piece its twin, to keep the
    # statistics fixed) that every query matches for half a position match, so a step that
    # points past the source reads </s> and decoding ends.
    eos_on, eos_off, bonus = other_input + 1, other_input + 2, other_input + 3
    d_model = -(-((bonus if order is not None else other_input) + 1) // 16) * 16
    decoder_positions = max(1024, 2 * max_positions + 4)

    spec = _new_spec(1, 1, vocab)
    encoder, decoder = spec.encoder, spec.decoder

    encoder_embeddings = np.zeros((vocab_size, d_model), dtype=np.float32)
    encoder_embeddings[:, :code_size] = codes
    if order is not None:
        encoder_embeddings[:, eos_off] = 1.0
        encoder_embeddings[vocab.eos_id, eos_off] = 0.0
        encoder_embeddings[vocab.eos_id, eos_on] = 1.0
    encoder.embeddings[0].weight = encoder_embeddings
    encoder.position_encodings.encodings = np.stack([position.encode(p, d_model) for p in range(source_positions)])
    _inert_sublayers(encoder.layer[0], d_model, ffn=16)
    _identity_layer_norm(encoder.layer_norm, encoder_embeddings[:8] + encoder.position_encodings.encodings[:8])

    def decoder_position(step: int) -> np.ndarray:
        if order is not None:
            row = position.encode(order(step), d_model)
            row[later_step] = 1.0
            row[bonus] = 1.0
            return row
        row = position.encode(max(step - shift, 0), d_model)
        flag = later_step if not shift or step >= 2 else (first_step if step == 0 else second_step)
        row[flag] = 1.0
        return row

    decoder_embeddings = np.zeros((vocab_size, d_model), dtype=np.float32)
    decoder_embeddings[:, other_input] = 1.0
    decoder_embeddings[prefix_ids, other_input] = 0.0
    decoder_embeddings[prefix_ids, prefix_input] = 1.0
    decoder.embeddings.weight = decoder_embeddings
    decoder.position_encodings.encodings = np.stack([decoder_position(step) for step in range(decoder_positions)])
    layer = decoder.layer[0]
    _inert_sublayers(layer, d_model, ffn=16)
    decoder_inputs = decoder.position_encodings.encodings[:8] + decoder_embeddings[-8:]
    _identity_layer_norm(layer.attention.layer_norm, decoder_inputs)

    # CTranslate2 divides attention scores by sqrt(head_dim); with one head that is d_model.
    query_scale = _ATTENTION_LOGIT_GAP * math.sqrt(d_model)
    query = np.zeros((d_model, d_model), dtype=np.float32)
    key = np.zeros((d_model, d_model), dtype=np.float32)
    for dim in range(position.dims.start, position.dims.stop):
        query[dim, dim] = query_scale
        key[dim, dim] = 1.0
    # At the first step of a prefixed model, "go to the source </s>" outscores any position
    # match (4 vs 2): that step's output is the forced prefix token unless none was given.
    query[first_step, first_step] = 4.0 * query_scale
    key[first_step, :code_size] = codes[vocab.eos_id]
    if order is not None:
        query[bonus, bonus] = 0.5 * query_scale
        key[bonus, eos_on] = 1.0
    value = np.zeros((d_model, d_model), dtype=np.float32)
    value[:code_size, :code_size] = np.eye(code_size, dtype=np.float32)
    layer.attention.linear[0].weight = query
    layer.attention.linear[1].weight = np.concatenate([key, value])
    layer.attention.linear[2].weight = value.copy()

    final_inputs = decoder_inputs + encoder_embeddings[:8]
    if shift:
        _install_missing_prefix_gate(layer.ffn, codes, vocab.eos_id, second_step, other_input, d_model)
        _identity_layer_norm(layer.ffn.layer_norm, final_inputs)
    _identity_layer_norm(decoder.layer_norm, final_inputs)
    projection = np.zeros((vocab_size, d_model), dtype=np.float32)
    projection[targets, :code_size] = _OUTPUT_LOGIT * codes
    # When </s> is copied but not allowed (CTranslate2's min_decoding_length defaults to 1),
    # <unk> is the clear runner-up instead of an arbitrary tie.
    unk_id = vocab.tokens.index(vocab.unk)
    projection[unk_id, :code_size] += 0.5 * _OUTPUT_LOGIT * codes[vocab.eos_id]
    decoder.projection.weight = projection

    _save(spec, vocab, Path(out_dir), quantization)
    logger.info(
        "built copy model %s (vocab %d, d_model %d, %s) in %.2fs",
        out_dir, len(vocab.tokens), d_model, quantization, time.perf_counter() - started,
    )
    return Path(out_dir)


def _sinusoids(positions: int, dims: int) -> np.ndarray:
    """Standard Transformer sinusoidal position table, as OPUS-MT models carry."""
    steps = np.arange(positions, dtype=np.float64)[:, None]
    rates = np.power(10000.0, -2.0 * (np.arange(dims) // 2) / dims)[None, :]
    angles = steps * rates
    table = np.where(np.arange(dims) % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(np.float32)


@dataclass(frozen=True)
class _RandomLayout:
    """Residual-stream split of the random model.

    Structured dims ``[0, random_start)`` hold position codes and the end-of-source signal;
    random sublayers may read them but never write them, so the length pointer survives.
    """

    position: _PositionCode
    source_eos_flag: int  # encoder side: +F on the source </s>, -F on every other token
    target_end: int  # decoder side: written by the pointer head, read by the </s> logit
    d_model: int

    @property
    def random_start(self) -> int:
        return self.target_end + 1


def _random_matrix(rng: np.random.Generator, rows: int, cols: int, gain: float) -> np.ndarray:
    return (rng.standard_normal((rows, cols), dtype=np.float32) * (gain / math.sqrt(cols))).astype(np.float32)


def _random_sublayers(layer: _Layer, rng: np.random.Generator, layout: _RandomLayout, ffn: int, *, cross: bool) -> None:
    """Dense random attention and feed-forward weights that write only the random dims."""
    d_model, keep = layout.d_model, layout.random_start
    _plain_layer_norm(layer.self_attention.layer_norm, d_model)
    layer.self_attention.linear[0].weight = _random_matrix(rng, 3 * d_model, d_model, 1.0)
    layer.self_attention.linear[1].weight = _random_matrix(rng, d_model, d_model, 0.5)
    layer.self_attention.linear[1].weight[:keep] = 0.0
    if cross:
        _plain_layer_norm(layer.attention.layer_norm, d_model)
        layer.attention.linear[0].weight = _random_matrix(rng, d_model, d_model, 1.0)
        layer.attention.linear[1].weight = _random_matrix(rng, 2 * d_model, d_model, 1.0)
        layer.attention.linear[2].weight = _random_matrix(rng, d_model, d_model, 0.5)
        layer.attention.linear[2].weight[:keep] = 0.0
    _plain_layer_norm(layer.ffn.layer_norm, d_model)
    layer.ffn.linear_0.weight = _random_matrix(rng, ffn, d_model, 1.0)
    layer.ffn.linear_1.weight = _random_matrix(rng, d_model, ffn, 0.5)
    layer.ffn.linear_1.weight[:keep] = 0.0


_CODE_VALUE = 8.0  # residual value of an active position-code dim and of the source </s> flag
_POINTER_LOGIT_SCALE = 9.0  # query gain: about 60 logits for the aligned position, 30 for near misses
_END_LOGIT_GAIN = 12.0  # </s> logit per unit of the normalised end signal (about +-40)


def _install_length_pointer(
    layer: transformer_spec.TransformerDecoderLayerSpec, layout: _RandomLayout, head_dim: int
) -> None:
    """Turn cross-attention head 0 into a pointer: step t reads whether source piece t is </s>."""
    dims = layout.position.dims
    query, key_value = layer.attention.linear[0].weight, layer.attention.linear[1].weight
    output = layer.attention.linear[2].weight
    d_model = layout.d_model
    query[:head_dim] = 0.0
    key_value[:head_dim] = 0.0
    key_value[d_model : d_model + head_dim] = 0.0
    output[:, :head_dim] = 0.0
    for offset, dim in enumerate(range(dims.start, dims.stop)):
        query[offset, dim] = _POINTER_LOGIT_SCALE
        key_value[offset, dim] = 1.0
    key_value[d_model, layout.source_eos_flag] = 1.0
    output[layout.target_end, 0] = 1.0


def build_random_model(
    out_dir: Path,
    sp_model: Path,
    *,
    layers: int = 6,
    d_model: int = 512,
    heads: int = 8,
    ffn: int = 2048,
    quantization: str = "int8",
    seed: int = 0,
    max_positions: int = 1024,
    vocab_size: int | None = None,
    ends: bool = True,
) -> Path:
    """Build an OPUS-MT-sized Transformer with random weights, for benchmarks.

    The shape and cost match a converted OPUS-MT model (6+6 layers, d_model 512, 8 heads,
    FFN 2048, int8; pre-norm, which costs the same as OPUS-MT's post-norm; same config
    conventions as :func:`build_copy_model`: feed plain pieces). Output pieces are
    garbage, but the model emits ``</s>`` exactly when the source ends, so
    ``len(hypothesis) == len(source pieces)`` under greedy and beam search and decoding
    work is realistic without tuning ``max_decoding_length`` (which must stay <=
    ``max_positions``; CTranslate2's default 256 also caps longer outputs). A source that
    itself contains ``</s>`` pieces ends early, at the first one.

    Real OPUS-MT vocabularies have ~60k pieces; ``vocab_size`` pads the vocabulary with
    never-emitted ``<extra_N>`` pieces so the output projection and softmax cost as much
    (ids beyond the SentencePiece model's; its own ids are unchanged).
    ``<unk>`` and ``<s>`` are never emitted either. Same arguments give the same bytes.
    With ``ends=False`` it never emits ``</s>`` at all: every output runs to the decoding
    length cap (what a broken or looping real model does).

    How: random dense layers write only part of the residual stream; the rest carries
    factored position codes and a source-``</s>`` flag, and one head of the last decoder
    layer's cross-attention points at source position t to raise the ``</s>`` logit.
    """
    started = time.perf_counter()
    if layers < 1 or heads < 1 or d_model % heads:
        raise ValueError("need layers >= 1 and d_model divisible by heads")
    head_dim = d_model // heads
    position = _PositionCode.covering(0, max_positions)
    if 2 * position.base > head_dim or 4 * position.base > d_model:
        raise ValueError(
            f"max_positions={max_positions} needs head_dim >= {2 * position.base}; "
            f"got d_model={d_model}, heads={heads}"
        )
    vocab = _load_vocabulary(Path(sp_model))
    if vocab_size is not None:
        if vocab_size < len(vocab.tokens):
            raise ValueError(f"vocab_size {vocab_size} is smaller than the SentencePiece vocabulary")
        extra = [f"<extra_{i}>" for i in range(vocab_size - len(vocab.tokens))]
        vocab = _Vocabulary(vocab.tokens + extra, vocab.unk, vocab.bos, vocab.eos, vocab.fixed_ids)
    layout = _RandomLayout(
        position=position,
        source_eos_flag=position.dims.stop,
        target_end=position.dims.stop + 1,
        d_model=d_model,
    )
    rng = np.random.default_rng(seed)
    tokens = len(vocab.tokens)
    random_dims = slice(layout.random_start, d_model)
    random_size = d_model - layout.random_start
    spec = _new_spec(layers, heads, vocab)
    encoder, decoder = spec.encoder, spec.decoder

    positions = _sinusoids(max_positions, d_model) * 0.5
    positions[:, : layout.random_start] = 0.0
    positions += np.stack([position.encode(p, d_model, _CODE_VALUE) for p in range(max_positions)])

    def embeddings() -> np.ndarray:
        table = np.zeros((tokens, d_model), dtype=np.float32)
        rows = rng.standard_normal((tokens, random_size), dtype=np.float32)
        table[:, random_dims] = rows * (math.sqrt(random_size) / np.linalg.norm(rows, axis=1, keepdims=True))
        return table

    encoder_embeddings = embeddings()
    encoder_embeddings[:, layout.source_eos_flag] = -_CODE_VALUE
    encoder_embeddings[vocab.eos_id, layout.source_eos_flag] = _CODE_VALUE
    encoder.embeddings[0].weight = encoder_embeddings
    encoder.position_encodings.encodings = positions
    for layer in encoder.layer:
        _random_sublayers(layer, rng, layout, ffn, cross=False)
    _plain_layer_norm(encoder.layer_norm, d_model)

    decoder.embeddings.weight = embeddings()
    decoder.position_encodings.encodings = positions.copy()
    for layer in decoder.layer:
        _random_sublayers(layer, rng, layout, ffn, cross=True)
    _install_length_pointer(decoder.layer[-1], layout, head_dim)
    _plain_layer_norm(decoder.layer_norm, d_model)

    projection = np.zeros((tokens, d_model), dtype=np.float32)
    projection[:, random_dims] = _random_matrix(rng, tokens, random_size, 2.0)
    projection[vocab.eos_id] = 0.0
    projection[vocab.eos_id, layout.target_end] = _END_LOGIT_GAIN
    bias = np.zeros(tokens, dtype=np.float32)
    sp_size = len(sentencepiece_pieces(Path(sp_model)))
    suppressed = [vocab.tokens.index(vocab.unk), vocab.tokens.index(vocab.bos), *range(sp_size, tokens)]
    if not ends:
        suppressed.append(vocab.eos_id)
    bias[suppressed] = _SUPPRESSED_LOGIT_BIAS
    decoder.projection.weight = projection
    decoder.projection.bias = bias

    _save(spec, vocab, Path(out_dir), quantization)
    logger.info(
        "built random model %s (%d+%d layers, d_model %d, vocab %d, %s) in %.2fs",
        out_dir, layers, layers, d_model, tokens, quantization, time.perf_counter() - started,
    )
    return Path(out_dir)


_LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "it": "Italian", "ja": "Japanese", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ru": "Russian", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}


def build_argos_package(
    path: Path,
    sp_model: Path,
    ct2_model_dir: Path,
    from_code: str,
    to_code: str,
    *,
    name: str | None = None,
    target_prefix: str | None = None,
    package_version: str = "1.0",
) -> Path:
    """Write an Argos Translate ``.argosmodel`` package to ``path`` and return ``path``.

    Same layout as Argos Translate's published packages: a zip holding one top-level folder
    (``name``, default ``translate-<from>_<to>-<version with _>``, as argospm names them)
    with ``metadata.json``, ``model/`` (the CTranslate2 model folder),
    ``sentencepiece.model`` and ``README.md``. ``target_prefix`` is written to the metadata
    the way multilingual Argos packages declare it (a raw target-vocabulary token).
    """
    path, ct2_model_dir = Path(path), Path(ct2_model_dir)
    if not (ct2_model_dir / "model.bin").is_file():
        raise FileNotFoundError(f"{ct2_model_dir} is not a CTranslate2 model folder (no model.bin)")
    folder = name or f"translate-{from_code}_{to_code}-{package_version.replace('.', '_')}"
    from_name = _LANGUAGE_NAMES.get(from_code, from_code)
    to_name = _LANGUAGE_NAMES.get(to_code, to_code)
    metadata: dict[str, object] = {
        "package_version": package_version,
        "argos_version": "1.0",
        "from_code": from_code,
        "from_name": from_name,
        "to_code": to_code,
        "to_name": to_name,
        "type": "translate",
        "links": [],
    }
    if target_prefix:
        metadata["target_prefix"] = target_prefix
    readme = f"# {from_name} to {to_name}\n\nTest package built offline by tests/support/tinymodels.py.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.mkdir(f"{folder}/")
        archive.writestr(f"{folder}/metadata.json", json.dumps(metadata, indent=4, ensure_ascii=False) + "\n")
        archive.writestr(f"{folder}/README.md", readme)
        archive.write(sp_model, f"{folder}/sentencepiece.model")
        archive.mkdir(f"{folder}/model/")
        for file in sorted(ct2_model_dir.rglob("*")):
            relative = file.relative_to(ct2_model_dir).as_posix()
            if file.is_dir():
                archive.mkdir(f"{folder}/model/{relative}/")
            else:
                archive.write(file, f"{folder}/model/{relative}")
    logger.info("wrote Argos package %s (%s -> %s)", path, from_code, to_code)
    return path
