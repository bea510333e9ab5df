"""The general-English familiarity score: words common in English and rare in the in-domain
text raise it; punctuation and digits do not count."""
from __future__ import annotations

import math

import pytest

from model.uncertainty import UnigramDensity


def test_the_ratio_is_general_over_in_domain_probability_per_word_piece(default_predictor):
    tok = default_predictor.ckpt.tokenizer
    in_domain = [e.ids for e in tok.encode(["the film is good", "the film is bad", "a good film"] * 10)]
    general = {"the": 1000, "company": 500, "shares": 400, "film": 5, "good": 50}
    density = UnigramDensity.fit(in_domain, tok.vocab_size, general, tok)
    film, company = (tok.encode([w])[0].ids[1] for w in ("film", "company"))
    assert density.ratio[company] > 0 > density.ratio[film]
    assert math.isnan(float(density.ratio[tok.encode([","])[0].ids[1]]))
    news, review = density.scores([e.ids for e in tok.encode(["the company shares", "the good film"])])[:, 1]
    assert news > review
    # punctuation leaves the score as it is; a text with no word piece scores 0
    same, none = density.scores([e.ids for e in tok.encode(["the company shares , . !", ", . 123"])])[:, 1]
    assert same == pytest.approx(float(news))
    assert none == 0.0


def test_without_general_counts_the_score_is_zero(default_predictor):
    tok = default_predictor.ckpt.tokenizer
    density = UnigramDensity.fit([e.ids for e in tok.encode(["a good film"])], tok.vocab_size)
    assert density.ratio is None
    assert density.scores([e.ids for e in tok.encode(["the company shares"])])[:, 1].tolist() == [0.0]


def test_the_default_model_finds_news_less_familiar_than_a_review(default_predictor):
    p = default_predictor.predict(["the company said third-quarter net income rose 12 % on higher sales of chemicals",
                                   "a gripping , funny and beautifully acted film"])
    assert p[0].uncertainty.total > p[1].uncertainty.total
