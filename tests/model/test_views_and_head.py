"""Seeded views, the posterior draws and the uncertainty split, on their own."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.config import SCORES, HeadConfig, NetworkConfig, ViewConfig
from model.calibrate import fit_scales
from model.cot import cot_length
from model.uncertainty import decompose, similarity, view_probabilities
from model.views import pack_views, text_seed, text_views

S = len(SCORES)


def test_text_seed_is_stable_across_processes():
    # blake2b, not Python's salted hash(): this value must never change
    assert text_seed("hello") == text_seed("hello") != text_seed("hello ")
    assert text_seed("hello") == 4511043874410912595


def test_views_keep_specials_and_permute_within_windows():
    ncfg, vcfg = NetworkConfig(), ViewConfig(n_views=4, window=3)
    seq = [101, *range(1000, 1010), 102]
    pv = pack_views([seq], [text_seed("t")], vcfg, ncfg)
    views = pv.pos.view(4, len(seq))
    for v in range(4):
        pos = views[v].numpy()
        rel = pos - pos[0]
        assert rel[0] == 0 and rel[-1] == len(seq) - 1
        body = rel[1:-1]
        for s in range(0, 10, 3):
            assert sorted(body[s : s + 3]) == list(range(1 + s, 1 + min(s + 3, 10)))
    assert len({tuple(views[v].tolist()) for v in range(4)}) > 1



def test_packed_views_lie_end_to_end_in_runs_of_one_length():
    ncfg, vcfg = NetworkConfig(), ViewConfig(n_views=2)
    seqs = [[101, 7, 102], [101, 8, 102], [101, 9, 10, 102]]
    pv = pack_views(seqs, [1, 2, 3], vcfg, ncfg)
    assert pv.runs == [(3, 4), (4, 2)]
    assert pv.ids.tolist() == [101, 7, 102] * 2 + [101, 8, 102] * 2 + [101, 9, 10, 102] * 2
    assert pv.pos.tolist()[:6] == text_views(3, 1, vcfg, ncfg)[0].reshape(-1).tolist()
    assert pv.z.shape == (3, 2, ncfg.n_labels)


def test_posterior_draws_are_antithetic():
    _, z = text_views(10, 123, ViewConfig(n_views=6), NetworkConfig(n_labels=3))
    assert z.shape == (6, 3) and np.allclose(z[0::2], -z[1::2])


def test_far_from_data_is_uniform_and_epistemic():
    head = HeadConfig(temperature=1.0, sigma0=4.0)
    logits = torch.tensor([[[5.0, -5.0]] * 4])
    z = torch.from_numpy(text_views(5, 7, ViewConfig(n_views=4), NetworkConfig())[1]).float().unsqueeze(0)
    near = decompose(view_probabilities(logits, torch.ones(1, 4), z, head))
    far = decompose(view_probabilities(logits, torch.zeros(1, 4), z, head))
    assert near.probs[0, 0] > 0.99
    assert torch.allclose(far.probs, torch.tensor([[0.5, 0.5]]), atol=1e-6)
    assert far.total[0] > near.total[0]
    assert far.epistemic[0] > 0.1 and near.epistemic[0] < 1e-3


def test_similarity_is_one_up_to_the_reference_quantile_then_decays():
    head = HeadConfig(length_edges=[], score_median=[[10.0, 0.0, 5.0, 0.0, 0.0]],
                      score_spread=[[2.0, 1.0, 1.0, 1.0, 1.0]], decay=2.0)
    typical = torch.tensor([[[11.0, 0.5, 5.5, 0.5, 0.5]]])  # every score below its 95th percentile
    one_far = torch.tensor([[[11.0, 0.5, 8.0, 0.5, 0.5]]])  # unigram score 3 spreads past the median
    n = torch.tensor([12])
    assert similarity(typical, n, head) == 1.0
    assert similarity(one_far, n, head) == pytest.approx(math.exp(-2.0 * 2.0))


def test_a_text_is_judged_against_texts_of_its_length():
    # short texts spread wider: the same score is typical for 3 pieces, far for 30
    head = HeadConfig(length_edges=[8], score_median=[[0.0] * S, [0.0] * S],
                      score_spread=[[4.0] * S, [1.0] * S], decay=2.0)
    scores = torch.tensor([[[0.0, 0.0, 3.0, 0.0, 0.0]]] * 2)
    r = similarity(scores, torch.tensor([3, 30]), head)
    assert r[0, 0] == 1.0
    assert r[1, 0] == pytest.approx(math.exp(-2.0 * 2.0))


def test_scales_of_a_thin_length_bucket_fall_back_to_all_texts():
    head = HeadConfig(length_edges=[8])
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(200, 2, S, generator=gen)
    scores[:, :, 2] += torch.linspace(0, 10, 200)[:, None]
    pieces = torch.tensor([3] * 10 + [20] * 190)  # 10 short texts: too few for their own scale
    fit_scales(scores, pieces, head)
    pooled = HeadConfig(length_edges=[])
    fit_scales(scores, pieces, pooled)
    assert head.score_median[0] == pooled.score_median[0]
    assert head.score_median[1] != pooled.score_median[0]
    assert all(s > 0 for row in head.score_spread for s in row)


@pytest.mark.parametrize("quantile", [0.95, 0.92, 0.8])
def test_the_similarity_shrinks_the_share_of_in_domain_views_that_the_quantile_leaves(quantile):
    head = HeadConfig(length_edges=[8])
    scores = torch.randn(2000, 4, S, generator=torch.Generator().manual_seed(1))
    pieces = torch.tensor([3, 20] * 1000)
    fit_scales(scores, pieces, head, shrink_quantile=quantile)
    shrunk = float((similarity(scores, pieces, head) < 1).double().mean())
    assert shrunk == pytest.approx(1 - quantile, abs=0.005)


def test_a_weighted_score_alone_decides_which_views_are_shrunk():
    # score 0 weighted 4: past the threshold it alone makes the worst score, so the views
    # shrunk are those with the largest score 0, still the quantile's share of them
    head = HeadConfig(length_edges=[])
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(4000, 1, S, generator=gen, dtype=torch.float64)
    pieces = torch.full((4000,), 12)
    fit_scales(scores, pieces, head, shrink_quantile=0.9, weights=(4.0,) + (1.0,) * (S - 1))
    assert head.score_weight == [4.0] + [1.0] * (S - 1)
    shrunk = (similarity(scores, pieces, head) < 1)[:, 0]
    assert float(shrunk.double().mean()) == pytest.approx(0.1, abs=0.005)
    top = scores[:, 0, 0] >= torch.quantile(scores[:, 0, 0], 0.9)
    assert float((shrunk == top).double().mean()) > 0.99
    # unweighted, the same share is spread over every score's outliers
    fit_scales(scores, pieces, head, shrink_quantile=0.9)
    assert head.score_weight == [1.0] * S
    assert float(((similarity(scores, pieces, head) < 1)[:, 0] == top).double().mean()) < 0.9


def test_scores_switched_off_are_read_back_from_the_fitted_head():
    head = HeadConfig(length_edges=[8])
    scores = torch.randn(400, 2, S, generator=torch.Generator().manual_seed(3))
    fit_scales(scores, torch.tensor([3, 20] * 200), head, off=(1, 3))
    assert head.scores_off() == (1, 3)
    assert HeadConfig().scores_off() == ()


def test_score_weights_are_one_per_score_and_positive():
    assert HeadConfig().score_weight == [1.0] * S  # configs written before the weights load as before
    for bad in ([1.0] * (S - 1), [1.0] * (S - 1) + [0.0]):
        with pytest.raises(ValueError, match="score_weight"):
            HeadConfig(score_weight=bad)


def test_scales_must_match_the_buckets_and_scores():
    with pytest.raises(ValueError, match="length buckets"):
        HeadConfig(length_edges=[4, 8], score_median=[[0.0] * S] * 2, score_spread=[[1.0] * S] * 2)
    with pytest.raises(ValueError, match="one list per length bucket"):
        HeadConfig(score_median=[0.0, 0.0, 0.0], score_spread=[1.0, 1.0, 1.0])


def test_decomposition_identity():
    vp = torch.softmax(torch.randn(5, 4, 3), -1)
    d = decompose(vp)
    assert torch.all(d.epistemic >= 0)
    assert torch.allclose(d.total, d.aleatoric + d.epistemic)


def test_cot_length_grows_as_the_square_root_of_length():
    conf = 0.9
    assert cot_length(100, conf) == math.ceil(math.sqrt(100) * math.log(10))
    assert cot_length(400, conf) > cot_length(100, conf) > cot_length(25, conf)
    # four times the tokens, twice the steps (up to rounding)
    assert abs(cot_length(400, conf) - 2 * cot_length(100, conf)) <= 1
    assert cot_length(1, 0.5) == 1


def test_the_similarity_falls_only_past_the_worst_scores_reference_quantile():
    # independent scores each pass 5% past z = 1; the threshold on the worst of them
    # keeps 95% of the reference views fully familiar
    head = HeadConfig(length_edges=[])
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(2000, 1, S, generator=gen, dtype=torch.float64)
    pieces = torch.full((2000,), 12)
    fit_scales(scores, pieces, head)
    r = similarity(scores, pieces, head)
    assert head.score_threshold[0] > 1.0
    assert abs(float((r == 1.0).double().mean()) - 0.95) < 0.01
