"""The default model's answers: well-formed, decomposed, deterministic, batch-independent."""
from __future__ import annotations

import math

import pytest
import torch

from model import shards
from model.predictor import Predictor

TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish",
    "x",
    "Ceci n'est pas un film, c'est une catastrophe.",
    "def f(x):\n    return x * 2",
    "<html><body><p>hello</p></body></html>",
    "🎬🍿 " * 50,
    "a long review . " * 400,  # far past the token limit
]


def test_probabilities_and_uncertainty_are_well_formed(default_predictor: Predictor):
    for p in default_predictor.predict(TEXTS):
        assert set(p.probabilities) == set(default_predictor.labels)
        assert math.isclose(sum(p.probabilities.values()), 1.0, abs_tol=1e-6)
        assert p.label == max(p.probabilities, key=p.probabilities.get)
        assert p.confidence == pytest.approx(p.probabilities[p.label])
        assert p.label_id == default_predictor.labels.index(p.label)
        u = p.uncertainty
        assert u.epistemic >= 0.0 and u.aleatoric >= 0.0
        assert u.total == pytest.approx(u.aleatoric + u.epistemic, abs=1e-9)
        assert u.total <= math.log(len(default_predictor.labels)) + 1e-6
        assert p.cot_length >= 1
        assert p.reasoning is None


def test_two_loaded_instances_agree_exactly(default_predictor: Predictor):
    other = Predictor.load()
    assert default_predictor.predict(TEXTS) == other.predict(TEXTS)


def test_answer_does_not_depend_on_batch_or_padding(default_predictor: Predictor):
    alone = [default_predictor.predict([t])[0] for t in TEXTS]
    mixed = default_predictor.predict(list(reversed(TEXTS)) + ["another text that shares the batch"] * 5)
    together = list(reversed(mixed[: len(TEXTS)]))
    for a, b in zip(alone, together):
        assert a.label == b.label
        for k in a.probabilities:
            assert a.probabilities[k] == pytest.approx(b.probabilities[k], abs=1e-6)
        assert a.uncertainty.total == pytest.approx(b.uncertainty.total, abs=1e-6)
        assert a.uncertainty.epistemic == pytest.approx(b.uncertainty.epistemic, abs=1e-6)


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_answer_does_not_depend_on_the_shard_count(default_predictor: Predictor, torch_threads):
    texts = TEXTS + [f"scene {i} of a film that runs {i} minutes too long" for i in range(20)]
    torch_threads(1)
    assert shards.shard_count(torch.device("cpu"), len(texts)) == 1
    one = default_predictor.predict(texts)
    torch_threads(3)
    assert shards.shard_count(torch.device("cpu"), len(texts)) == 3
    assert shards.shard_count(torch.device("cpu"), 2) == 2  # never more shards than texts
    three = default_predictor.predict(texts)
    for a, b in zip(one, three):
        assert a.probabilities == b.probabilities
        assert a.uncertainty == b.uncertainty


def test_shards_split_the_work_evenly_and_keep_its_order():
    lengths = {0: 1, 1: 1, 2: 2, 3: 2, 4: 3, 5: 3}
    assert shards.split(range(6), lengths.get, 2) == [[0, 1, 2, 3], [4, 5]]  # 6 and 6
    assert shards.split(range(6), lengths.get, 3) == [[0, 1, 2], [3, 4], [5]]
    assert shards.split([7], lambda i: 5, 4) == [[7]]  # never an empty shard


def test_reasoning_is_evidence_from_the_input(default_predictor: Predictor):
    text = "a gorgeous , witty , seductive movie ."
    [p] = default_predictor.predict([text], with_reasoning=True)
    assert p.reasoning and len(p.reasoning) >= 3
    quoted = [s.split("'")[1] for s in p.reasoning if s.startswith("'")]
    assert quoted and all(w in text for w in quoted)
    # the same answer as without reasoning: evidence is extra work, not a different model
    [q] = default_predictor.predict([text])
    assert q.probabilities == p.probabilities


def test_info_describes_the_checkpoint(default_predictor: Predictor):
    info = default_predictor.info()
    assert info.labels == ["negative", "positive"]
    assert info.n_views == default_predictor.ckpt.cfg.views.n_views
    assert len(info.digest) == 64
    assert "validation" in info.metrics
