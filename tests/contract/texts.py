"""Varied texts for parity: lengths from 1 to 10,000 characters, many scripts, emoji,
markup, escapes and odd whitespace. Deterministic."""
from __future__ import annotations

import random

FRAGMENTS = [
    "What a wonderful film, I loved every minute.",
    "Terrible service; the food was cold and the staff rude.",
    "Ce film était magnifique, vraiment émouvant.",
    "Das war die schlechteste Erfahrung meines Lebens.",
    "这部电影非常好看，我强烈推荐。",
    "このレストランは最悪でした。二度と行きません。",
    "이 제품 정말 마음에 들어요!",
    "Это был ужасный день, всё пошло не так.",
    "الخدمة كانت ممتازة والطعام لذيذ جدا",
    "השירות היה גרוע מאוד",
    "यह फिल्म बहुत अच्छी थी",
    "Η ταινία ήταν υπέροχη!",
    "😀😃😄 best day ever 🎉🎉",
    "👨‍👩‍👧‍👦 family trip 🏖️ was 👎",
    "<p>Great <b>product</b>, would <a href='x'>buy</a> again</p>",
    "# Heading\n\n* item one\n* item **two**\n\n```code block```",
    '{"json": "inside", "n": [1, 2, 3], "quote": "\\"esc\\""}',
    "back\\slash and \"quotes\" and 'single' and `tick`",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "e\u0301 combining marks and \u200b zero width",
    "SELECT * FROM reviews WHERE stars < 2; -- meh",
    "https://example.com/path?q=1&r=2#frag",
    "nul \u0000 and bell \u0007 controls",
    "ok",
]
SINGLES = ["a", "Z", "9", "😀", "中", "!", "é", " x ", "\u00a0b\u00a0"]
LENGTHS = [2, 3, 5, 8, 13, 21, 40, 80, 160, 320, 640, 1280, 2500, 5000, 7500, 9999, 10_000]


def varied_texts(n: int = 220, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = list(SINGLES) + list(FRAGMENTS)
    while len(texts) < n:
        length = rng.choice(LENGTHS) if rng.random() < 0.5 else rng.randint(1, 10_000)
        parts: list[str] = []
        while sum(map(len, parts)) < length:
            parts.append(rng.choice(FRAGMENTS))
        text = " ".join(parts)[:length].strip() or "x"
        texts.append(text)
    texts.append("y" * 10_000)  # the longest allowed
    texts.append("  \n" + "z" * 9_995 + "\t ")  # 10,000 as sent; the model reads it stripped
    return texts
