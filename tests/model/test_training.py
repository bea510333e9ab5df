"""A tiny end-to-end training run, resuming, and evaluation on its output."""
from __future__ import annotations

import dataclasses
import json

import pytest

from model.config import NetworkConfig
from model.data import write_rows
from model.evaluate import evaluate, labelled_predictions
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


def test_labels_the_model_does_not_know_are_named(tiny_checkpoint, tiny_rows, tmp_path):
    data = tmp_path / "rows.csv"
    write_rows(data, [dataclasses.replace(tiny_rows[0], label="neutral")] + tiny_rows[1:4])
    with pytest.raises(ValueError, match=r"labels \['neutral'\] are not among"):
        labelled_predictions(Predictor.load(tiny_checkpoint), data)


def test_the_same_rows_train_the_same_model(tiny_rows, tmp_path):
    """Without the teacher, training builds its own tokenizer: its vocabulary, and so the
    weights, must not depend on hash-map order (huggingface/tokenizers#1794)."""
    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    weights = []
    for run in ("a", "b"):
        out = train(tiny_rows[:40], tiny_rows[40:], tmp_path / run, TrainSettings(epochs=1, distill=False, network=small),
                    state_dir=tmp_path / f"state-{run}")
        assert (out / "tokenizer.json").read_bytes() == (tmp_path / "a" / "tokenizer.json").read_bytes()
        weights.append((out / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_own_tokenizer_marks_word_continuations():
    from model.train import build_tokenizer

    texts = ["a charming film", "charmingly made", "unbelievably charming"] * 3
    tok = build_tokenizer(texts, 32)
    # a word it never saw: a word start, then a marked continuation
    assert tok.tokens(tok.encode(["filmy"])[0].ids[1:-1]) == ["film", "##y"]
    assert tok.decode(tok.encode(["charmingly made"])[0].ids[1:-1]) == "charmingly made"


def _train_args(*argv: str):
    import argparse

    from model.cli import add_train

    parser = argparse.ArgumentParser()
    add_train(parser.add_subparsers())
    return parser.parse_args(["train", "--data", "d.csv", "--out", "o", *argv])


def test_the_settings_round_trip_through_a_checkpoint_and_bet_train_config(tiny_checkpoint, tmp_path):
    from model.cli import train_settings

    stored = json.loads((tiny_checkpoint / "metadata.json").read_text())["settings"]
    settings = TrainSettings.from_dict(stored)
    assert settings.epochs == 2 and settings.network.d_model == 32 and not settings.distill
    assert settings.to_dict() == stored
    # `bet train --config CHECKPOINT` starts from them; a flag given overrides one field
    assert train_settings(_train_args("--config", str(tiny_checkpoint))) == settings
    again = train_settings(_train_args("--config", str(tiny_checkpoint), "--epochs", "3", "--draws", "8"))
    assert again == dataclasses.replace(settings, epochs=3, views=dataclasses.replace(settings.views, n_draws=8))
    # and from a JSON file of settings; the command line's defaults are the object's own
    (tmp_path / "s.json").write_text(json.dumps(stored))
    assert train_settings(_train_args("--config", str(tmp_path / "s.json"))) == settings
    assert train_settings(_train_args()) == TrainSettings()


def test_score_weight_flags_set_one_score_each_and_refuse_unknown_scores(tiny_checkpoint, capsys):
    from model.cli import train_settings

    base = TrainSettings.from_dict(json.loads((tiny_checkpoint / "metadata.json").read_text())["settings"])
    got = train_settings(_train_args("--config", str(tiny_checkpoint), "--score-weight", "unigram_nll=0.85",
                                     "--score-weight", "general_english_ratio=0.6"))
    assert got.score_weight == {**base.score_weight, "unigram_nll": 0.85, "general_english_ratio": 0.6}
    for bad in ("unigram=0.5", "unigram_nll", "unigram_nll=half"):
        with pytest.raises(SystemExit):
            _train_args("--score-weight", bad)
        assert "--score-weight" in capsys.readouterr().err


def test_unknown_training_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainSettings.from_dict(TrainSettings().to_dict() | {"epochz": 3})
    with pytest.raises(ValueError, match="unknown ViewConfig settings"):
        TrainSettings.from_dict(TrainSettings().to_dict() | {"views": {"n_views": 4, "window": 3}})


def test_settings_stored_before_a_setting_existed_train_as_they_did():
    """Settings stored before a setting existed (an older checkpoint's metadata.json) read
    it with the value that means what training did then (settings.BEFORE): random batches,
    pieces alone, the teacher's soft labels alone for the n-gram head, plain binary n-grams,
    no rated background, long texts neither cross-fitted nor weighed on their own."""
    from model.settings import BEFORE

    stored = TrainSettings().to_dict()
    for name in BEFORE:
        stored.pop(name)
        stored["teacher"].pop(name, None)
    stored["ngrams"].pop("sublinear_tf")
    settings = TrainSettings.from_dict(stored)
    assert settings.length_pool == 0 and settings.teacher.length_pool == 0 and not settings.piece_pairs
    assert settings.ngram_labels == 0 and not settings.ngram_idf and not settings.ngrams.sublinear_tf
    assert not settings.background_ratings and not settings.long_cross_fit and not settings.long_ngram_weight
    new = TrainSettings()  # a new run's defaults
    assert new.length_pool > 0 and new.piece_pairs and new.ngram_labels == 1 and new.ngram_idf
    assert new.ngrams.sublinear_tf and new.long_cross_fit
    assert TrainSettings.from_dict(TrainSettings().to_dict()) == TrainSettings()
