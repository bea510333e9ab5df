"""Seeded views, the posterior draws and the uncertainty split, on their own."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from model.config import SCORES, HeadConfig, NetworkConfig, ViewConfig
from model.calibrate import fit_scales
from model.cot import cot_length
from model.uncertainty import decompose, similarity, view_probabilities
from model.views import draw_uniforms, draw_views, draws_from, text_seed

S = len(SCORES)


def named(values) -> dict[str, float]:
    return dict(zip(SCORES, values))


def test_text_seed_is_stable_across_processes():
    # blake2b, not Python's salted hash(): this value must never change
    assert text_seed("hello") == text_seed("hello") != text_seed("hello ")
    assert text_seed("hello") == 4511043874410912595


def test_views_stratify_their_offsets_and_window_starts():
    ncfg, vcfg = NetworkConfig(max_offset=32), ViewConfig(n_views=4, n_draws=8)
    tv = draw_views(text_seed("t"), vcfg, ncfg)
    # view k's offset in the k-th quarter of [0, 32); window starts one per quarter of a window
    assert [int(o) // 8 for o in tv.offsets] == [0, 1, 2, 3]
    assert sorted(int(s) * 4 // (ncfg.max_len - 2) for s in tv.starts) == [0, 1, 2, 3]
    assert draws_from(tv.u, ncfg.n_labels).shape == (4, 8, ncfg.n_labels)
    again = draw_views(text_seed("t"), vcfg, ncfg)
    assert np.array_equal(tv.offsets, again.offsets) and np.array_equal(tv.u, again.u)


@pytest.mark.parametrize("labels", [2, 3, 5])
def test_posterior_draws_sum_to_zero_and_fill_their_strata(labels):
    z = draws_from(draw_uniforms(4, 16, labels, np.random.default_rng(0)), labels)
    assert z.shape == (4, 16, labels)
    assert np.allclose(z.sum(-1), 0.0)
    # projected standard normals: each coordinate's variance is (C - 1) / C
    assert abs(z.var() - (labels - 1) / labels) < 0.15
    if labels == 2:  # antithetic: the draws of a view average exactly to zero
        assert np.allclose(z.mean(1), 0.0)
        u = np.sort(norm.cdf(z[0, :, 0] * np.sqrt(2)))
        assert np.all((np.floor(u * 16) == np.arange(16)))  # one draw in each of 16 strata


@pytest.mark.parametrize("labels, draws", [(3, 33), (3, 32), (4, 32), (5, 16)])
def test_three_or_more_labels_draw_whole_orbits_and_answer_uniform_far_from_the_data(labels, draws):
    u = draw_uniforms(4, draws, labels, np.random.default_rng(3))
    z = draws_from(u, labels)
    assert z.shape == (4, draws, labels)
    # draw j is generator j // C shifted by j mod C labels: the generators' orbits
    whole = draws - draws % labels
    generators = z[:, ::labels]
    for s in range(labels):
        assert np.array_equal(z[:, s::labels], np.roll(generators, s, axis=-1)[:, : len(range(s, draws, labels))])
    # the generators' uniforms fill one stratum each, per view and coordinate
    g = -(-draws // labels)
    for view in range(4):
        for d in range(labels - 1):
            assert sorted(np.floor(u[view, ::labels, d] * g).astype(int)) == list(range(g))
    if whole == draws:
        assert np.allclose(z.mean(1), 0.0, atol=1e-12)
    head = HeadConfig(temperature=1.0, sigma0=5.0)
    logits = torch.randn(1, 4, labels, generator=torch.Generator().manual_seed(labels), dtype=torch.float64) * 3
    far = decompose(view_probabilities(logits, torch.zeros(1, 4, dtype=torch.float64),
                                       torch.from_numpy(z).unsqueeze(0), head))
    # whole orbits give each label 1/C; the cut orbit's draws move it by (M mod C) / M at most
    off = float((far.probs - 1 / labels).abs().max())
    assert off < 1e-12 if whole == draws else off <= (draws - whole) / draws
    assert far.epistemic[0] > 0.5 * far.total[0]


def test_far_from_data_is_uniform_and_epistemic():
    head = HeadConfig(temperature=1.0, sigma0=4.0)
    logits = torch.tensor([[[5.0, -5.0]] * 4], dtype=torch.float64)
    z = torch.from_numpy(draws_from(draw_views(7, ViewConfig(n_views=4), NetworkConfig()).u, 2)).unsqueeze(0)
    near = decompose(view_probabilities(logits, torch.ones(1, 4, dtype=torch.float64), z, head))
    far = decompose(view_probabilities(logits, torch.zeros(1, 4, dtype=torch.float64), z, head))
    assert near.probs[0, 0] > 0.99
    assert torch.allclose(far.probs, torch.tensor([[0.5, 0.5]], dtype=torch.float64), atol=1e-9)
    assert far.total[0] > near.total[0]
    assert near.epistemic[0] < 1e-9  # no spread near the data
    # far from it the draws are confident and disagree: most of the total is epistemic
    assert far.epistemic[0] > 0.5 * far.total[0]


@pytest.mark.parametrize("draws", [1, 2, 3, 8, 32])
def test_the_split_adds_up_on_every_draw_count(draws):
    head = HeadConfig(temperature=1.3, sigma0=4.0)
    gen = torch.Generator().manual_seed(draws)
    logits = torch.randn(20, 4, 3, generator=gen, dtype=torch.float64) * 3
    r = torch.rand(20, 4, generator=gen, dtype=torch.float64)
    z = torch.from_numpy(np.stack([draws_from(draw_views(i, ViewConfig(n_views=4, n_draws=draws),
                                                         NetworkConfig(n_labels=3)).u, 3)
                                   for i in range(20)]))
    d = decompose(view_probabilities(logits, r, z, head))
    assert torch.all(d.epistemic >= 0)
    assert torch.allclose(d.total, d.aleatoric + d.epistemic)
    assert torch.allclose(d.probs.sum(-1), torch.ones(20, dtype=torch.float64))


def test_similarity_is_one_up_to_the_reference_quantile_then_decays():
    head = HeadConfig(length_edges=[], score_median=[named([10.0, 0.0, 5.0, 0.0, 0.0])],
                      score_spread=[named([2.0, 1.0, 1.0, 1.0, 1.0])], decay=2.0)
    typical = torch.tensor([[[11.0, 0.5, 5.5, 0.5, 0.5, 0.0, 0.0]]])  # every score below its 95th percentile
    one_far = torch.tensor([[[11.0, 0.5, 8.0, 0.5, 0.5, 0.0, 0.0]]])  # unigram score 3 spreads past the median
    n = torch.tensor([12])
    assert similarity(typical, n, head) == 1.0
    assert similarity(one_far, n, head) == pytest.approx(math.exp(-2.0 * 2.0))


def test_a_text_is_judged_against_texts_of_its_length():
    # short texts spread wider: the same score is typical for 3 pieces, far for 30
    head = HeadConfig(length_edges=[8], score_median=[named([0.0] * S), named([0.0] * S)],
                      score_spread=[named([4.0] * S), named([1.0] * S)], decay=2.0)
    scores = torch.tensor([[[0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]]] * 2)
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
    assert all(s > 0 for row in head.score_spread for s in row.values())


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
    fit_scales(scores, pieces, head, shrink_quantile=0.9, weights={SCORES[0]: 4.0})
    assert head.score_weight == named([4.0] + [1.0] * (S - 1))
    shrunk = (similarity(scores, pieces, head) < 1)[:, 0]
    assert float(shrunk.double().mean()) == pytest.approx(0.1, abs=0.005)
    top = scores[:, 0, 0] >= torch.quantile(scores[:, 0, 0], 0.9)
    assert float((shrunk == top).double().mean()) > 0.99
    # unweighted, the same share is spread over every score's outliers
    fit_scales(scores, pieces, head, shrink_quantile=0.9)
    assert head.score_weight == named([1.0] * S)
    assert float(((similarity(scores, pieces, head) < 1)[:, 0] == top).double().mean()) < 0.9


def test_scores_switched_off_are_read_back_from_the_fitted_head():
    head = HeadConfig(length_edges=[8])
    scores = torch.randn(400, 2, S, generator=torch.Generator().manual_seed(3))
    fit_scales(scores, torch.tensor([3, 20] * 200), head, off=(SCORES[1], SCORES[3]))
    assert head.scores_off() == (SCORES[1], SCORES[3])
    assert HeadConfig().scores_off() == ()


def test_score_scales_and_weights_name_every_score():
    assert HeadConfig().score_weight == named([1.0] * S)
    for bad in (named([1.0] * S) | {"feature_distance": 0.0}, {k: 1.0 for k in SCORES[1:]},
                named([1.0] * S) | {"unknown": 1.0}):
        with pytest.raises(ValueError, match="score"):
            HeadConfig(score_weight=bad)


def test_scales_must_match_the_buckets_and_scores():
    with pytest.raises(ValueError, match="length buckets"):
        HeadConfig(length_edges=[4, 8], score_median=[named([0.0] * S)] * 2, score_spread=[named([1.0] * S)] * 2)
    with pytest.raises(ValueError, match="name each score"):
        HeadConfig(score_median=[[0.0] * S], score_spread=[[1.0] * S])


def test_decomposition_identity():
    vp = torch.softmax(torch.randn(5, 4, 6, 3), -1)
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


def test_the_gentle_fall_orders_familiar_texts_by_their_worst_score():
    head = HeadConfig(length_edges=[], score_median=[named([0.0] * S)], score_spread=[named([1.0] * S)],
                      score_threshold=[2.0], gentle_threshold=[0.0], gentle=0.1, decay=8.0)
    scores = torch.tensor([[[-1.0] * S], [[0.5] * S], [[1.5] * S], [[2.5] * S]], dtype=torch.float64)
    r = similarity(scores, torch.tensor([12] * 4), head)[:, 0]
    assert r[0] == 1.0  # below the gentle threshold
    assert 1.0 > r[1] > r[2] > 0.8  # graded between the two thresholds
    assert r[3] == pytest.approx(math.exp(-0.1 * 2.5 - 8.0 * 0.5))


def test_long_texts_weigh_the_ngram_logits_by_their_own_weight_where_one_is_fitted():
    import torch

    from model.config import HeadConfig
    from model.expectation import ViewOutputs

    n, k, c = 2, 3, 2
    out = ViewOutputs(logits=torch.ones(n, k, c, dtype=torch.float64), feats=torch.zeros(n, k, 4),
                      domain=torch.zeros(n, k), z=torch.zeros(n, k, 4, c),
                      ngram_logits=torch.tensor([[0.0, 2.0], [0.0, 2.0]], dtype=torch.float64),
                      ngram_domain=torch.zeros(n), pieces=torch.tensor([100, 300]))
    same = out.view_logits(HeadConfig(ngram_weight=1.0), width=126)
    assert torch.allclose(same[:, :, 1], torch.tensor([[3.0] * k, [3.0] * k], dtype=torch.float64))
    own = out.view_logits(HeadConfig(ngram_weight=1.0, long_ngram_weight=0.5), width=126)
    assert torch.equal(own[0], same[0])  # one window: the sentences' weight
    assert torch.allclose(own[1, :, 1], torch.full((k,), 2.0, dtype=torch.float64))  # 1 + 0.5 * 2
