"""The fine-tuned teacher's soft labels: temperature fitted on validation, logits cached.
Fine-tuning itself needs the `train` extra's MiniLM and minutes; these tests stand in for it."""
import numpy as np
import pytest

from scipy.special import softmax

from model import finetune
from model.calibrate import temperature_of_logits
from model.finetune import FinetuneSettings


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(20000, 3))
    p = softmax(logits / 2.5, axis=1)  # labels drawn at temperature 2.5
    labels = np.array([rng.choice(3, p=row) for row in p])
    assert temperature_of_logits(logits, labels) == pytest.approx(2.5, rel=0.05)


def _fake(calls):
    def score(train_texts, train_targets, texts, s):
        calls.append(list(texts))
        # logit of "positive" = 6 for texts starting with "good", else -6
        z = np.array([[0.0, 6.0] if t.startswith("good") else [0.0, -6.0] for t in texts])
        return z
    return score


def test_soft_labels_fit_the_temperature_on_validation_and_reuse_the_cached_logits(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(finetune, "_finetune_and_score", _fake(calls))
    train_texts, train_y = ["good a", "bad b"], np.eye(2)[[1, 0]]
    targets = ["good c", "bad d", "good e"]
    # validation: the teacher is right 3 times in 4, so its logits of +-6 are over-confident
    val_texts, val_y = ["good v", "good w", "good x", "bad y"], [1, 1, 0, 0]
    s = FinetuneSettings(epochs=1)
    p = finetune.soft_labels(train_texts, train_y, targets, val_texts, val_y, tmp_path, s)
    assert calls == [targets + val_texts]  # one fine-tuning scores targets and validation together
    assert p.shape == (3, 2) and np.allclose(p.sum(1), 1)
    assert p[0, 1] == pytest.approx(0.75, abs=1e-3)  # tempered to the validation accuracy
    assert p[1, 0] == pytest.approx(0.75, abs=1e-3)
    again = finetune.soft_labels(train_texts, train_y, targets, val_texts, val_y, tmp_path, s)
    assert len(calls) == 1 and np.array_equal(again, p)  # from the cache
    finetune.soft_labels(train_texts, train_y, targets, val_texts, val_y, tmp_path, FinetuneSettings(epochs=2))
    assert len(calls) == 2  # other settings, another teacher
    finetune.soft_labels(train_texts, np.array([[0.1, 0.9], [1.0, 0.0]]), targets, val_texts, val_y, tmp_path, s)
    assert len(calls) == 3  # other targets (a raters' split), another teacher


def test_soft_labels_without_validation_keep_the_logits_as_they_are(monkeypatch, tmp_path):
    monkeypatch.setattr(finetune, "_finetune_and_score", _fake([]))
    p = finetune.soft_labels(["good a"], np.eye(2)[[1]], ["good b"], [], [], tmp_path, FinetuneSettings())
    assert p[0, 1] == pytest.approx(1 / (1 + np.exp(-6)))


def test_fine_tuning_leaves_the_global_generator_as_it_found_it(monkeypatch, tmp_path):
    """Training draws dropout from torch's global generator after the teacher is made, so
    a fresh teacher and a cached one must leave it in the same state."""
    import torch

    def fine_tune(train_texts, train_targets, texts, s):
        torch.manual_seed(s.seed)
        torch.rand(100)
        return np.zeros((len(texts), train_targets.shape[1]))

    monkeypatch.setattr(finetune, "_finetune_and_score", fine_tune)
    draws = []
    for _ in range(2):  # the first call fine-tunes, the second reads the cache
        torch.manual_seed(7)
        finetune.soft_labels(["good a"], np.eye(2)[[1]], ["good b"], ["bad c"], [0], tmp_path, FinetuneSettings())
        draws.append(torch.rand(3))
    torch.manual_seed(7)
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], torch.rand(3))
