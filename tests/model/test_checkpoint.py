"""Production checkpoints: round trip, and a clear error for every kind of damage."""
from __future__ import annotations

import json

import pytest

from model import checkpoint
from model.checkpoint import CheckpointError, sha256_file
from model.predictor import Predictor
from model.tokenizer import TextTokenizer

TEXTS = ["a charming film", "boring and far too long", "something else entirely"]


def test_round_trip_gives_identical_answers(tiny_checkpoint, tmp_path):
    ck = checkpoint.load(tiny_checkpoint)
    again = checkpoint.save(tmp_path / "again", ck.cfg, ck.encoder, ck.density, ck.unigram, ck.ngrams, ck.tokenizer, ck.labels,
                            ck.metrics, ck.metadata["version"])
    assert Predictor.load(tiny_checkpoint).predict(TEXTS) == Predictor.load(again).predict(TEXTS)


def test_tokenizer_round_trip(tiny_checkpoint, tmp_path):
    tok = checkpoint.load(tiny_checkpoint).tokenizer
    tok.save(tmp_path / "tokenizer.json")
    back = TextTokenizer.from_file(tmp_path / "tokenizer.json", tok.max_len)
    assert [e.ids for e in back.encode(TEXTS)] == [e.ids for e in tok.encode(TEXTS)]
    enc = tok.encode(["a charming film"])[0]
    assert enc.ids[0] == tok.cls_id and enc.ids[-1] == tok.sep_id
    assert tok.decode(enc.ids[1:-1]).replace(" ", "") == "acharmingfilm"


def test_long_text_is_truncated_but_counted():
    tok = checkpoint.load().tokenizer
    enc = tok.encode(["word " * 1000])[0]
    assert len(enc.ids) == tok.max_len and enc.n_tokens == 1000


def _rehash(root):
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"] = {f: sha256_file(root / f) for f in manifest["files"]}
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, names", [
    (lambda r: (r / "model.safetensors").unlink(), "model.safetensors: missing"),
    (lambda r: (r / "model.safetensors").write_bytes((r / "model.safetensors").read_bytes()[:1000]), "model.safetensors: sha256"),
    (lambda r: (r / "tokenizer.json").write_text("{}"), "tokenizer.json: sha256"),
    (lambda r: (r / "manifest.json").unlink(), "manifest.json: missing"),
    (lambda r: (r / "manifest.json").write_text("not json"), "manifest.json: not valid JSON"),
])
def test_damaged_checkpoint_names_the_file(default_copy, damage, names):
    damage(default_copy)
    with pytest.raises(CheckpointError, match=names.replace(".", r"\.")):
        Predictor.load(default_copy)


@pytest.mark.parametrize("section, key, value, message", [
    ("network", "d_model", 96, r"model\.safetensors: weights do not match config\.json"),
    ("views", "surprise", 1, r"config\.json: unknown views settings"),
    ("ngrams", "bits", 12, r"model\.safetensors: n-gram weights do not match config\.json"),
    ("head", "length_edges", [4], r"config\.json: score scales and thresholds must hold 2 length buckets"),
])
def test_config_edits_that_cannot_be_served(default_copy, section, key, value, message):
    cfg = json.loads((default_copy / "config.json").read_text())
    cfg[section][key] = value
    (default_copy / "config.json").write_text(json.dumps(cfg))
    _rehash(default_copy)
    with pytest.raises(CheckpointError, match=message):
        Predictor.load(default_copy)


def test_truncated_weights_with_a_matching_manifest(default_copy):
    f = default_copy / "model.safetensors"
    f.write_bytes(f.read_bytes()[:5000])
    _rehash(default_copy)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: unreadable"):
        Predictor.load(default_copy)
