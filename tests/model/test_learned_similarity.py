"""bench.learned_similarity's fitted similarity: it keeps the answers of text whose targets
agree with them and falls where the targets are uniform, whatever the answers' size."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from bench.learned_similarity import Learnt, toward_ngrams
from model.config import ModelConfig
from model.expectation import ViewOutputs
from model.views import draw_uniforms, draws_from


def _outputs(n: int, margin: float, seed: int) -> ViewOutputs:
    cfg = ModelConfig()
    K, M = cfg.views.n_views, cfg.views.n_draws
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], n)
    logits = torch.from_numpy(np.stack([-sign, sign], -1) * margin / 2)[:, None, :].expand(n, K, 2).double()
    z = torch.from_numpy(np.stack([draws_from(draw_uniforms(K, M, 2, rng), 2) for _ in range(n)]))
    return ViewOutputs(logits=logits.clone(), feats=torch.zeros(n, K, 1, dtype=torch.float64),
                       domain=torch.zeros(n, K, dtype=torch.float64), z=z,
                       ngram_logits=torch.zeros(n, 2, dtype=torch.float64),
                       ngram_domain=torch.zeros(n, dtype=torch.float64), pieces=torch.full((n,), 10))


def test_similarity_falls_where_targets_are_uniform_and_stays_where_answers_are_right() -> None:
    cfg = ModelConfig()
    cfg.head.ngram_weight = 0.0
    exp = SimpleNamespace(cfg=cfg)
    home, far = _outputs(200, 4.0, 0), _outputs(200, 4.0, 1)
    # one unfamiliarity feature: near 0 at home, near 3 far away
    noise = torch.Generator().manual_seed(2)
    phi_home = torch.randn(200, cfg.views.n_views, 1, dtype=torch.float64, generator=noise) * 0.3
    phi_far = 3.0 + phi_home.flip(0)
    right = torch.nn.functional.one_hot(home.logits[:, 0].argmax(-1), 2).double()
    uniform = torch.full((200, 2), 0.5, dtype=torch.float64)
    learnt = Learnt(torch.cat([phi_home, phi_far]))
    learnt.fit(exp, [(home, phi_home, right), (far, phi_far, uniform)])
    with torch.no_grad():
        assert float(learnt(phi_home).mean()) > 0.9
        assert float(learnt(phi_far).mean()) < 0.3


def test_toward_ngrams_falls_to_the_ngram_answer_not_to_uniform() -> None:
    cfg = ModelConfig()
    cfg.head.ngram_weight = 0.0
    exp = SimpleNamespace(cfg=cfg)
    out = _outputs(50, 4.0, 3)
    out.ngram_logits = torch.tensor([[-1.0, 1.0]], dtype=torch.float64).expand(50, 2).clone()
    zero = torch.zeros(50, cfg.views.n_views, dtype=torch.float64)
    uniform = toward_ngrams(exp, 0.0)(out, zero).probs
    lexical = toward_ngrams(exp, 1.0)(out, zero).probs
    assert torch.allclose(uniform, torch.full_like(uniform, 0.5), atol=1e-6)  # antithetic draws: exactly 50/50
    assert bool((lexical[:, 1] > 0.6).all())
