"""The raters' agreement as a training signal: the optional `agreement` column of training
files, a row's class probabilities from it, the network's loss toward them, and rated
background text trained toward its raters' split instead of uniform."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.config import ModelConfig, NetworkConfig
from model.data import Row, read_rows, write_rows
from model.network import Encoder
from model.train import Example, TrainSettings, _loss


def test_an_agreement_column_is_read_written_and_optional(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label,agreement\ngood film,pos,0.9\nbad film,neg,\nfine film,pos,1\n", encoding="utf-8")
    rows = read_rows(path)
    assert [r.agreement for r in rows] == [0.9, None, 1.0]
    write_rows(tmp_path / "again.csv", rows)
    assert [r.agreement for r in read_rows(tmp_path / "again.csv")] == [0.9, None, 1.0]
    write_rows(tmp_path / "plain.csv", [Row("good film", "pos"), Row("bad film", "neg")])
    assert (tmp_path / "plain.csv").read_text(encoding="utf-8").splitlines()[0] == "text,label"
    lines = [{"text": "good film", "label": "pos", "agreement": 0.75}, {"text": "bad film", "label": "neg"},
             {"text": "odd film", "label": "neg", "agreement": None}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(o) + "\n" for o in lines), encoding="utf-8")
    assert [r.agreement for r in read_rows(tmp_path / "rows.jsonl")] == [0.75, None, None]


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high", "nan"])
def test_an_agreement_outside_0_to_1_is_refused_naming_its_line(tmp_path, value):
    path = tmp_path / "rows.csv"
    path.write_text(f"text,label,agreement\ngood film,pos,0.9\nbad film,neg,{value}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows\.csv:3: the agreement must be a number from 0 to 1"):
        read_rows(path)
    (tmp_path / "rows.jsonl").write_text(json.dumps({"text": "t", "label": "pos", "agreement": True}) + "\n")
    with pytest.raises(ValueError, match=r"rows\.jsonl:1: the agreement"):
        read_rows(tmp_path / "rows.jsonl")


def test_a_rows_target_puts_the_agreement_on_its_label_and_shares_the_rest():
    assert Row("t", "pos").target(["neg", "pos"]) == [0.0, 1.0]
    assert Row("t", "pos", agreement=0.8).target(["neg", "pos"]) == pytest.approx([0.2, 0.8])
    assert Row("t", "neu", agreement=0.6).target(["neg", "neu", "pos"]) == pytest.approx([0.2, 0.6, 0.2])
    assert Row("t", "pos", agreement=0.3) == Row("t", "pos")  # not part of a row's equality


def _logits_and_loss(batch: list[Example], settings: TrainSettings) -> tuple[torch.Tensor, float]:
    """The network's logits on the batch, as _loss computed them, and the loss."""
    cfg = ModelConfig(network=NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16))
    torch.manual_seed(0)
    enc = Encoder(cfg.network).eval()
    seen = {}
    forward = enc.forward

    def capture(*args):
        out = forward(*args)
        seen["logits"] = out[0].detach()
        return out

    enc.forward = capture
    loss = _loss(enc, batch, cfg, np.random.default_rng(0), settings).item()
    return seen["logits"], loss


def test_the_loss_of_labelled_rows_is_the_cross_entropy_to_their_targets():
    off = TrainSettings(domain_weight=0.0)
    q = np.array([[0.3, 0.7], [1.0, 0.0]])
    batch = [Example([101, 2000, 2001, 102], 1, None, None, target=q[0]),
             Example([101, 2002, 2003, 102], 0, None, None)]  # no target: its label, one-hot
    logits, loss = _logits_and_loss(batch, off)
    assert loss == pytest.approx(F.cross_entropy(logits, torch.tensor(q).float()).item(), abs=1e-6)


def test_rated_background_text_is_trained_toward_its_raters_split_and_the_rest_toward_uniform():
    off = TrainSettings(domain_weight=0.0, uniform_weight=1.0)
    q = np.array([[0.1, 0.9], [0.5, 0.5]])
    batch = [Example([101, 2000, 2001, 102], -1, None, None, in_domain=False, target=q[0]),
             Example([101, 2002, 2003, 102], -1, None, None, in_domain=False)]
    logits, loss = _logits_and_loss(batch, off)
    assert loss == pytest.approx(F.cross_entropy(logits, torch.tensor(q).float()).item(), abs=1e-6)
    # without the rating, both toward uniform: another loss
    plain = [Example(e.ids, -1, None, None, in_domain=False) for e in batch]
    _, uniform = _logits_and_loss(plain, off)
    expect = -F.log_softmax(logits, -1).mean().item()
    assert uniform == pytest.approx(expect, abs=1e-6) and not math.isclose(uniform, loss, abs_tol=1e-4)
