"""A tiny end-to-end training run, resuming, and evaluation on its output."""
from __future__ import annotations

import json

from model.config import NetworkConfig
from model.evaluate import evaluate
from model.data import write_rows
from model.predictor import Predictor
from model.train import TrainSettings, train


def test_tiny_training_run_writes_a_servable_checkpoint(tiny_checkpoint):
    pred = Predictor.load(tiny_checkpoint)
    assert pred.labels == ["negative", "positive"]
    meta = json.loads((tiny_checkpoint / "metadata.json").read_text())
    assert meta["version"] == "1" and meta["created_at"]
    [p] = pred.predict(["a charming , witty and moving film"])
    assert abs(sum(p.probabilities.values()) - 1) < 1e-6
    assert pred.ckpt.cfg.head.temperature > 0 and pred.ckpt.density is not None


def test_training_resumes_after_an_interruption(tiny_rows, tmp_path):
    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    state = tmp_path / "state"
    train(tiny_rows[:40], tiny_rows[40:], tmp_path / "a", TrainSettings(epochs=1, distill=False, network=small), state_dir=state)
    assert sorted(p.name for p in state.glob("epoch-*.pt")) == ["epoch-0001.pt"]
    # the same run asked for two epochs picks up after the first
    train(tiny_rows[:40], tiny_rows[40:], tmp_path / "b", TrainSettings(epochs=2, distill=False, network=small), state_dir=state)
    history = json.loads((state / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_evaluate_reports_every_measure(tiny_checkpoint, tiny_rows, tmp_path):
    data = tmp_path / "rows.csv"
    write_rows(data, tiny_rows)
    out = evaluate(tiny_checkpoint, data, tmp_path / "report")
    for key in ("accuracy", "nll", "brier", "ece", "misclassification_auroc_confidence",
                "misclassification_auroc_total_uncertainty", "selective_accuracy_at_80"):
        assert key in out
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 1000
