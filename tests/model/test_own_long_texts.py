"""A user's own long texts with `bet train`'s defaults: the n-gram head reads labelled rows
whole, and the validation rows longer than one window fit the window gain."""
from __future__ import annotations

import json
import random

from model.config import NetworkConfig
from model.data import Row
from model.predictor import Predictor
from model.settings import MIN_LONG_TEXTS
from model.train import TrainSettings, train

FILLER = ("the report was filed on a weekday and the committee read it twice before the meeting "
          "went on to the next item of the agenda as planned").split()


def _long_rows(n: int, seed: int) -> list[Row]:
    """Texts of some 150 filler words whose one telling word comes last, past the first
    window: only a reader of the whole text can label them."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ("approved", "rejected")[i % 2]
        words = [rng.choice(FILLER) for _ in range(rng.randint(140, 170))]
        rows.append(Row(" ".join([*words, f"{label} {rng.randint(0, 10**6)}"]), label))
    return rows


def test_long_rows_are_read_whole_and_fit_the_window_gain(tmp_path):
    train_rows, val_rows = _long_rows(60, 0), _long_rows(MIN_LONG_TEXTS + 4, 1)
    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    out = train(train_rows, val_rows, tmp_path / "m", TrainSettings(epochs=1, distill=False, network=small),
                state_dir=tmp_path / "state")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["settings"]["long_texts"] == "validation"
    assert meta["n_long"] == len(val_rows)  # every validation row is longer than a window
    assert "long_texts" in json.loads((out / "metrics.json").read_text())
    pred = Predictor.load(out)
    test = _long_rows(20, 2)
    right = sum(p.label == r.label for p, r in zip(pred.predict([r.text for r in test]), test, strict=True))
    # The telling word is only in the last window, which the n-gram head reads: a reader of
    # the first window alone is at chance (15 or more of 20 by chance: 2%). Counted features
    # (sublinear_tf) give the filler's repeats most of the weight, so not all 20.
    assert right >= 15


def test_too_few_long_validation_rows_leave_the_window_gain_at_zero(tiny_rows, tmp_path):
    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    long = [Row(r.text, ("positive", "negative")[i % 2]) for i, r in enumerate(_long_rows(MIN_LONG_TEXTS - 1, 3))]
    out = train(tiny_rows[:40], tiny_rows[40:] + long, tmp_path / "m",
                TrainSettings(epochs=1, distill=False, network=small), state_dir=tmp_path / "state")
    assert Predictor.load(out).ckpt.cfg.head.window_gain == 0.0
    assert json.loads((out / "metadata.json").read_text())["n_long"] == 0


def test_labelled_long_texts_are_cross_fitted(tmp_path, monkeypatch):
    """long_texts "reviews" with long_cross_fit: the n-gram head learns from every long
    text, and the window gain is fitted on logits of a head fitted without the texts it
    scores (its class part only); n_long counts each long text once."""
    from model import train as T

    fits = []
    fit = T.NgramHead.fit

    def spy(features, labelled, targets, in_domain, background, *args, **kwargs):
        fits.append(({tuple(x) for x in labelled}, len(background)))
        return fit(features, labelled, targets, in_domain, background, *args, **kwargs)

    monkeypatch.setattr(T.NgramHead, "fit", spy)
    train_rows, val_rows, long = _long_rows(40, 0), _long_rows(8, 1), _long_rows(60, 4)
    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    settings = TrainSettings(epochs=1, distill=False, network=small, long_texts="reviews", background="none",
                             long_ngram_weight=True)
    out = train(train_rows, val_rows, tmp_path / "m", settings, state_dir=tmp_path / "state", long_rows=long)
    from model.tokenizer import TextTokenizer

    tok = TextTokenizer.from_file(out / "tokenizer.json", small.max_len)
    whole = [tuple([tok.cls_id, *b, tok.sep_id]) for b in tok.bodies([r.text for r in long])]
    cut = round(settings.long_ngram_share * len(long))
    (final, _), (unseen, unseen_background) = fits
    assert set(whole) <= final  # the final head learned from every long text
    assert set(whole[:cut]) <= unseen and not set(whole[cut:]) & unseen
    assert unseen_background == 0  # no in-domain logit for the cross-fitted head
    assert json.loads((out / "metadata.json").read_text())["n_long"] == len(long)
    head = Predictor.load(out).ckpt.cfg.head
    assert head.long_ngram_weight is not None and head.window_gain >= 0.0
