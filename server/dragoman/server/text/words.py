"""Language-independent word tokens and word counts.

Scripts written without spaces (Chinese, Japanese kana, Thai, Lao, Khmer, Myanmar) have no word
boundaries a regex can see, so they are tokenised as character bigrams and counted as one word per
two characters - close to the average word length of Chinese and Thai, and the same rule for
every language, so limits such as "at most 100 words" mean roughly the same everywhere.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

# Code point ranges of scripts written without spaces between words.
_UNSPACED = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"  # Myanmar
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer
    "\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff"  # ideographic marks, Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"  # CJK ideographs, half-width kana
    "\U00020000-\U0003134f"  # CJK extensions B-H
)
_CONNECTORS = "'\u2019.\\-"  # inside a word: don't, 3.14, e-mail


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """Word tokens, unspaced runs in group "unspaced"; built on first use because listing the combining marks
    (which \\w does not match, yet Devanagari or Thai words contain) walks the Unicode table."""
    marks: list[str] = []
    ranges_start: int | None = None
    for code in [*range(0x300, 0x20000), *range(0xE0100, 0xE01F0), sys.maxunicode + 1]:
        is_mark = code <= sys.maxunicode and unicodedata.category(chr(code)).startswith("M")
        if is_mark and ranges_start is None:
            ranges_start = code
        elif not is_mark and ranges_start is not None:
            marks.append(f"{re.escape(chr(ranges_start))}-{re.escape(chr(code - 1))}")
            ranges_start = None
    letter = f"(?:[^\\W_]|[{''.join(marks)}])"
    spaced = f"(?:(?![{_UNSPACED}]){letter})"
    return re.compile(f"(?P<unspaced>[{_UNSPACED}]+)|{spaced}+(?:[{_CONNECTORS}]{spaced}+)*")


def _unspaced_letters(run: str) -> int:
    return sum(1 for c in run if not unicodedata.category(c).startswith(("M", "P", "Z")))


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; runs of unspaced scripts become overlapping character bigrams."""
    out: list[str] = []
    for match in _token_pattern().finditer(text):
        word = match.group().lower()
        if match.lastgroup == "unspaced":
            if len(word) == 1:
                out.append(word)
            else:
                out.extend(word[i:i + 2] for i in range(len(word) - 1))
        else:
            out.append(word)
    return out


def count_words(text: str) -> int:
    """Words in ``text``: spaced-script word tokens, plus half the letters of each unspaced run
    (rounded up), e.g. "Hello world" -> 2, "你好世界" -> 2, "我们" + "OK" -> 2."""
    total = 0
    for match in _token_pattern().finditer(text):
        total += -(-_unspaced_letters(match.group()) // 2) if match.lastgroup == "unspaced" else 1
    return total
