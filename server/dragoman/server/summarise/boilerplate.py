"""Lines of a scraped page that are page furniture, not article: never summary material.

Crawled news pages keep bylines, dates, reading times, photo captions and credits, "Click to
enlarge" and share prompts as lines of their own. They are short and often share words with the
article (a caption names the people in it), so a centrality ranking happily picks them. They are
recognised line by line, by shape (a date, a credit in brackets, a short line that is only a
prompt) and by small word lists in the languages newsrooms publish most in; a line that merely
contains such a word but reads as a sentence of the article is kept.
"""

from __future__ import annotations

import functools
import re

from dragoman.server.text.words import tokens

# Month and weekday names and the words around a date ("Published on", "Updated at", "Uhr").
_DATE_WORDS = frozenset("""
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
januar jänner februar märz mai juni juli oktober dezember
montag dienstag mittwoch donnerstag freitag samstag sonnabend sonntag
janvier février mars avril juin juillet août septembre octobre novembre décembre
lundi mardi mercredi jeudi vendredi samedi dimanche
enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre noviembre diciembre
lunes martes miércoles jueves viernes sábado domingo
gennaio febbraio aprile maggio giugno luglio settembre ottobre dicembre
lunedì martedì mercoledì giovedì venerdì sabato domenica
janeiro fevereiro março maio junho julho setembro outubro novembro dezembro
segunda terça quarta quinta sexta feira
januari februari maart mei augustus
published posted updated update last modified created on at am pm by
gmt utc bst cet cest est edt pst pdt ist
veröffentlicht aktualisiert zuletzt stand um uhr vom
publié mis à jour le à h
publicado actualizado actualización el a las de del
pubblicato aggiornato il alle ore
gepubliceerd bijgewerkt op om
ago hour hours minute minutes day days vor stunden minuten tagen il y a hace horas días
""".split())

_MINUTE = re.compile(r"\b(?:min|mins|minute|minutes|minuten|minuto|minutos|minuti|minuut)\b\.?")
_READ = re.compile(
    r"\b(?:read|reading|lesezeit|lesedauer|lesen|lecture|lectura|lettura|leitura|leestijd)\b")

# Bylines: "By A and B", "Von A", "Par A", "Por A", "Di A", "Door A", "Av A".
_BYLINE_START = frozenset("by von par por di door av af text texto texte".split())
_NAME_JOINERS = frozenset(
    "and und et y e en og och & de da del der van von la le di dos das du mit with".split())

# Who took a picture: words that introduce or make up a photo credit.
_CREDIT_WORDS = frozenset("""
photo photos foto fotos fotografía fotografia photograph picture pictures image images bild
bilder credit crédit crédito credito source quelle fuente archive archiv archivo archives file
courtesy getty istock shutterstock afp ap epa efe dpa reuters ansa anadolu xinhua tass pa
keystone apa belga anp kyodo imago picture-alliance via
""".split())
_CREDIT_LEAD = re.compile(
    r"^\s*(?:\(?(?:photo|photos|foto|fotos|fotografía|image|picture|bild|bilder|credit|crédit"
    r"|crédito|crédit photo|photo credit|bildquelle|quelle|fuente)\)?)\s*:", re.IGNORECASE)
# A trailing credit: "[AFP]", "(Photo AFP)", ". Foto: dpa", ". EFE/Archivo".
_CREDIT_TAIL = re.compile(
    r"(?:[\[(]\s*(?P<bracketed>[^\[\]()]{1,40}?)\s*[\])]"
    r"|[.!?]\s+(?P<after>(?:[\w.-]+\s*[:/]\s*)?[\w.-]+(?:\s*/\s*[\w.-]+)*))\s*$")

# Short lines that are only an instruction to the reader (anchored: the whole line).
_PROMPTS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"(?:click|tap|press)(?: here)? (?:to|for) (?:enlarge|expand|zoom|view|see|play|read)\b.*",
    r"(?:zum )?vergrößern(?: klicken)?|bild vergrößern|zum vergrößern (?:klicken|tippen)",
    r"cliquez (?:ici )?pour (?:agrandir|voir|lire)\b.*|agrandir",
    r"haga clic (?:aquí )?para (?:ampliar|ver|leer)\b.*|clic para ampliar|pulse para ampliar",
    r"clicca (?:qui )?per (?:ingrandire|vedere)\b.*",
    r"share(?: this)?(?: (?:article|story|page|post))?(?: (?:on|via) \w+)?",
    r"(?:artikel |beitrag )?teilen(?: (?:auf|über|per) \w+)?",
    r"partager(?: (?:cet|l')\s?article)?(?: sur \w+)?",
    r"compartir(?: (?:este )?(?:artículo|noticia))?(?: en \w+)?",
    r"condividi(?: (?:l')?articolo)?(?: su \w+)?",
    r"follow us(?: on \w+)?|folgen sie uns(?: auf \w+)?|suivez-nous(?: sur \w+)?|síguenos(?: en \w+)?",
    r"(?:subscribe|sign up|abonnieren|abonnez-vous|suscríbete|iscriviti)\b.{0,60}",
    r"(?:read more|read also|see also|related(?: articles?| stories)?|more on this(?: story)?|"
    r"mehr zum thema|lesen sie auch|mehr lesen|weiterlesen|lire aussi|à lire aussi|lire la suite|"
    r"voir aussi|leer más|lee también|ver también|leggi anche|leia também)\b.*",
    r"advertisement|advert|sponsored|anzeige|werbung|publicité|publicidad|pubblicità|annonce",
    r"(?:\d+ )?(?:comments?|kommentare?|commentaires?|comentarios?|commenti)",
    r"(?:copy link|link kopieren|copier le lien|copiar enlace|print|drucken|imprimer|imprimir|"
    r"e-?mail|whatsapp|facebook|twitter|x|linkedin|telegram|reddit|pinterest)",
))

_TRAILING = " \t:|>»›→·•-–—"


def _words(line: str) -> list[str]:
    return line.split()


def _is_date(line: str, words: list[str]) -> bool:
    if not any(c.isdigit() for c in line) or len(words) > 14:
        return False
    letters = [t for t in tokens(line) if not any(c.isdigit() for c in t)]
    rest = [t for t in letters if t not in _DATE_WORDS and not re.fullmatch(r"\d*(?:h|st|nd|rd|th|er|e|º|ª)", t)]
    return not rest


def _is_reading_time(line: str, words: list[str]) -> bool:
    lowered = line.lower()
    return (len(words) <= 7 and any(c.isdigit() for c in line)
            and bool(_MINUTE.search(lowered)) and bool(_READ.search(lowered) or len(words) <= 2))


def _is_byline(words: list[str]) -> bool:
    if not 2 <= len(words) <= 8 or words[0].lower().rstrip(":") not in _BYLINE_START:
        return False
    names = words[1:]
    if names[-1][-1:] in ".!?":
        return False
    return all(w.lower() in _NAME_JOINERS or w[:1].isupper() for w in names) and \
        any(w[:1].isupper() for w in names)


def _is_credit(line: str, words: list[str]) -> bool:
    if "©" in line or re.search(r"\(c\)\s", line, re.IGNORECASE):
        return True
    if _CREDIT_LEAD.match(line) and len(words) <= 10:
        return True
    lowered = tokens(line)
    if lowered and len(words) <= 5 and all(t in _CREDIT_WORDS for t in lowered):
        return True  # "Getty Images", "AFP via Getty Images"
    tail = _CREDIT_TAIL.search(line)
    if tail is None:
        return False
    credit = tail.group("bracketed") or tail.group("after") or ""
    credit_tokens = tokens(credit)
    if not credit_tokens or len(credit_tokens) > 5:
        return False
    # "[AFP]", "(Photo AFP)", "Foto: dpa", "EFE/Archivo": the credit names an agency or says it
    # is a picture; "(in French)" or "(2019)" do not.
    return any(t in _CREDIT_WORDS for t in credit_tokens) and (
        tail.group("bracketed") is not None or ":" in credit or "/" in credit
        or all(t in _CREDIT_WORDS for t in credit_tokens)
    )


def _is_prompt(line: str, words: list[str]) -> bool:
    if len(words) > 10:
        return False
    core = line.strip().strip(_TRAILING).strip()
    return any(p.fullmatch(core) for p in _PROMPTS)


@functools.lru_cache(maxsize=4096)
def is_boilerplate(line: str) -> bool:
    """Whether a whole line of a page is furniture (byline, date, caption, credit, prompt)."""
    stripped = line.strip()
    if not stripped:
        return False
    words = _words(stripped)
    return (_is_date(stripped, words) or _is_reading_time(stripped, words)
            or _is_byline(words) or _is_credit(stripped, words) or _is_prompt(stripped, words))
