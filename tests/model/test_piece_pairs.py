"""The piece density's pair score: a piece is read given the one before it, so the same
pieces in an order the domain never holds read as less familiar; models stored without
pairs score as they did."""
from __future__ import annotations

import numpy as np
import pytest

from model.uncertainty import UnigramDensity

IN_DOMAIN = ["the film is good", "the film is bad", "a good film with a bad end"] * 10


def test_pieces_out_of_their_order_read_as_less_familiar(default_predictor):
    tok = default_predictor.ckpt.tokenizer
    seqs = [e.ids for e in tok.encode(IN_DOMAIN)]
    texts = tok.bodies(["the film is good", "good is film the"])
    paired = UnigramDensity.fit(seqs, tok.vocab_size, pairs=True).scores(texts)[:, 0]
    alone = UnigramDensity.fit(seqs, tok.vocab_size).scores(texts)[:, 0]
    assert paired[1] > paired[0] + 1.0  # pairs the domain never holds
    assert alone[1] == pytest.approx(float(alone[0]))  # the same pieces, whatever their order
    assert paired[0] < alone[0]  # pairs the domain holds are likelier than the pieces alone


def test_a_single_piece_reads_as_its_frequency(default_predictor):
    tok = default_predictor.ckpt.tokenizer
    seqs = [e.ids for e in tok.encode(IN_DOMAIN)]
    one = tok.bodies(["film"])
    paired = UnigramDensity.fit(seqs, tok.vocab_size, pairs=True).scores(one)[:, 0]
    assert float(paired[0]) == pytest.approx(float(UnigramDensity.fit(seqs, tok.vocab_size).scores(one)[0, 0]))


def test_a_trained_model_stores_its_pairs(tiny_checkpoint):
    from model.checkpoint import load

    unigram = load(tiny_checkpoint).unigram
    assert unigram is not None and unigram.pairs is not None
    assert np.isclose(float(unigram.pairs.max()), 1.0) and float(unigram.pairs.min()) == 0.0


def test_the_default_model_reads_pairs_as_its_settings_say(default_predictor):
    import json

    from model.checkpoint import DEFAULT_DIR

    settings = json.loads((DEFAULT_DIR / "metadata.json").read_text())["settings"]
    assert (default_predictor.ckpt.unigram.pairs is not None) == settings.get("piece_pairs", False)
