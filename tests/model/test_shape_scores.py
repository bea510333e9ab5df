"""The text-shape familiarity scores (uncertainty.PieceShape), heads stored before them, and
refitting a finished network's heads with them (`bet train --network-from`)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from model.calibrate import MIN_SPREAD, fit_scales
from model.checkpoint import CheckpointError
from model.config import OFF_SPREAD, SCORES, SHAPE_SCORES, HeadConfig, NetworkConfig
from model.train import TrainSettings, train
from model.uncertainty import PieceShape, similarity

SMALL = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)


def test_the_shares_read_what_a_text_is_made_of(default_predictor):
    shape = PieceShape.of(default_predictor.ckpt.tokenizer)
    texts = ["a warm and funny film about growing up", "def f(x): return {x[0]: x + 1}",
             "zxqvk jhwpq lzmtr vbnqx", "il gatto dorme sul divano della nonna", ""]
    got = shape.scores(default_predictor.ckpt.tokenizer.bodies(texts))
    english, code, noise, italian, empty = got.tolist()
    assert english == [0.0, 0.0]
    assert code[0] > 0.3 and noise[1] > 0.4 and italian[1] > 0.2
    assert empty == [0.0, 0.0]


def test_a_head_stored_before_the_shape_scores_reads_them_as_off():
    older = [name for name in SCORES if name not in SHAPE_SCORES]
    head = HeadConfig(length_edges=[], score_median=[dict.fromkeys(older, 0.0)],
                      score_spread=[dict.fromkeys(older, 1.0)], score_weight=dict.fromkeys(older, 1.0), decay=2.0)
    assert head.scores_off() == SHAPE_SCORES
    assert head.score_spread[0]["symbol_share"] == OFF_SPREAD
    scores = torch.zeros(1, 1, len(SCORES))
    scores[..., 2] = 3.0  # one of the older scores past its threshold
    shaped = scores.clone()
    shaped[..., SCORES.index("symbol_share")] = 0.9  # whatever the shape scores read
    n = torch.tensor([12])
    assert similarity(scores, n, head) == similarity(shaped, n, head) == pytest.approx(2.718281828 ** -4.0)


def test_a_score_that_short_texts_never_show_takes_the_scale_of_all_texts():
    """Most short texts hold no symbol piece: their 95th percentile is their median, and a
    spread of nothing would read one symbol as endlessly unfamiliar."""
    head = HeadConfig(length_edges=[8])
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(400, 1, len(SCORES), generator=gen)
    j = SCORES.index("symbol_share")
    scores[:200, :, j] = 0.0  # the 200 short texts: none
    fit_scales(scores, torch.tensor([3] * 200 + [30] * 200), head)
    short, long_ = head.score_spread[0]["symbol_share"], head.score_spread[1]["symbol_share"]
    assert short > MIN_SPREAD * 1000
    assert head.score_median[0]["symbol_share"] == 0.0
    assert short == pytest.approx(float(torch.quantile(scores[..., j].double(), 0.95)
                                        - torch.quantile(scores[..., j].double(), 0.5)))
    assert long_ > MIN_SPREAD * 1000


def test_network_from_fits_new_heads_on_the_same_network(tiny_checkpoint, tiny_rows, tmp_path):
    settings = TrainSettings(epochs=2, distill=False, network=SMALL, shape_scores=True)
    out = train(tiny_rows[:40], tiny_rows[40:], tmp_path / "refit", settings, state_dir=tmp_path / "state",
                network_from=tiny_checkpoint)
    assert not list((tmp_path / "state").glob("epoch-*.pt"))  # no epoch ran
    before, after = load_file(str(tiny_checkpoint / "model.safetensors")), load_file(str(out / "model.safetensors"))
    network = [k for k in before if not k.startswith(("density.", "unigram.", "ngram."))]
    assert network and all(torch.equal(before[k], after[k]) for k in network)
    head = json.loads((out / "config.json").read_text())["head"]
    old = json.loads((tiny_checkpoint / "config.json").read_text())["head"]
    assert all(head["score_spread"][0][name] < OFF_SPREAD for name in SHAPE_SCORES)
    assert all(old["score_spread"][0][name] >= OFF_SPREAD for name in SHAPE_SCORES)
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history == json.loads((tiny_checkpoint / "metrics.json").read_text())["history"]


def test_network_from_refuses_a_network_of_another_shape(tiny_checkpoint, tiny_rows, tmp_path):
    wider = NetworkConfig(d_model=64, n_heads=2, d_ff=64, embed_dim=16)
    with pytest.raises(CheckpointError, match="its network is not this training's"):
        train(tiny_rows[:40], tiny_rows[40:], tmp_path / "x", TrainSettings(epochs=2, distill=False, network=wider),
              state_dir=tmp_path / "state", network_from=tiny_checkpoint)
