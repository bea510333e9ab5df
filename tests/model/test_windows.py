"""A text longer than one window is read whole: windows, their answers and their cost."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from model.config import NetworkConfig, ViewConfig
from model.windows import TooLong, count, cuts, plan, window_pieces

FILLER = ("i went into this film knowing little about it , and for the first hour i was not sure what to make "
          "of it . the story follows a retired teacher in a small coastal town whose estranged daughter comes "
          "home with her young son , and the script takes its time letting the three of them get used to one "
          "another . some of the dialogue is sharp and some of it is flat , and the pacing drags in places . "
          "the lead gives a careful performance , though the supporting cast is uneven , and a subplot about a "
          "developer who wants to buy the harbour never quite earns its screen time . the photography of the "
          "coast in winter is handsome , the score is mostly piano , and the director keeps the camera close "
          "to the faces . there are moments that work and moments that do not , and by the last act the film "
          "has to decide what kind of story it wants to be . ")
GOOD = "in the end it is a wonderful , moving and brilliant film , one of the best of the year ."
BAD = "in the end it is a dull , lifeless and awful mess , one of the worst of the year ."


@pytest.mark.parametrize("n,start", [(1, 0), (126, 50), (127, 0), (127, 1), (300, 125), (1000, 37)])
def test_every_piece_is_in_exactly_one_window_of_a_view(n, start):
    spans = cuts(n, start, 126)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a < b and b - a <= 126 for a, b in spans)
    assert all(b == a2 for (_, b), (a2, _) in zip(spans, spans[1:]))  # consecutive, no overlap
    assert len(spans) <= count(n, NetworkConfig())


def test_windows_hold_real_pieces_only_and_each_view_reads_the_whole_text():
    ncfg, vcfg = NetworkConfig(), ViewConfig(n_views=4)
    body = list(range(1000, 1400))  # 400 pieces: several windows
    p = plan([body, [1000, 1001]], [7, 8], vcfg, ncfg)
    for v in range(4):
        mine = [s for s, o in zip(p.seqs, p.owner) if o == v]
        assert all(len(s) <= ncfg.max_len and s[0] == ncfg.cls_id and s[-1] == ncfg.sep_id for s in mine)
        assert [t for s in mine for t in s[1:-1]] == body  # in order, every piece once, no padding
        assert ncfg.pad_id not in {t for s in mine for t in s}
    starts = {tuple(len(s) for s, o in zip(p.seqs, p.owner) if o == v) for v in range(4)}
    assert len(starts) > 1  # the views cut the text at different places
    assert [len(s) for s, o in zip(p.seqs, p.owner) if o >= 4] == [4] * 4  # the short text: one window per view


def test_a_text_past_the_most_windows_is_refused():
    ncfg, vcfg = NetworkConfig(), ViewConfig(max_windows=3)
    width = window_pieces(ncfg)
    plan([[5] * (2 * width)], [1], vcfg, ncfg)
    with pytest.raises(TooLong, match="at most 3 windows"):
        plan([[5] * (3 * width)], [1], vcfg, ncfg)


def test_the_last_window_moves_a_long_texts_answer(default_predictor):
    good, bad = default_predictor.predict([FILLER + GOOD, FILLER + BAD])
    assert len(default_predictor.ckpt.tokenizer.bodies([FILLER])[0]) > window_pieces(NetworkConfig())
    assert good.probabilities["positive"] - bad.probabilities["positive"] > 0.1
    # cot_length counts every piece of the text
    n = len(default_predictor.ckpt.tokenizer.bodies([FILLER + GOOD])[0])
    assert default_predictor.info().window_pieces < n


def test_reasoning_covers_the_whole_text(default_predictor):
    [answer] = default_predictor.predict([FILLER + GOOD], with_reasoning=True)
    n = len(default_predictor.ckpt.tokenizer.bodies([FILLER + GOOD])[0])
    assert answer.reasoning[0].startswith(f"Read all {n} word pieces in ")
    # the words of the last window are among the evidence
    assert any(w in " ".join(answer.reasoning[1:4]) for w in ("'wonderful'", "'brilliant'", "'best'", "'moving'"))


def _answer(texts: list[str]) -> list[list[float]]:
    code = ("import json, sys; from model.predictor import Predictor; p = Predictor.load(); "
            "print(json.dumps([[a.confidence, a.uncertainty.total, a.uncertainty.epistemic] "
            "for a in p.predict(json.loads(sys.argv[1]))]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_long_text_answers_the_same_alone_in_a_batch_and_in_another_process(default_predictor):
    text = FILLER + GOOD
    mates = ["a sentence", FILLER * 2 + BAD, "another short one , quite good", BAD]
    alone = default_predictor.predict([text])[0]
    batched = default_predictor.predict(mates[:2] + [text] + mates[2:])[2]
    [elsewhere] = _answer([text])
    for a in (batched,):
        assert abs(a.confidence - alone.confidence) < 1e-6
        assert abs(a.uncertainty.total - alone.uncertainty.total) < 1e-6
        assert abs(a.uncertainty.epistemic - alone.uncertainty.epistemic) < 1e-6
    assert max(abs(x - y) for x, y in zip(elsewhere, [alone.confidence, alone.uncertainty.total,
                                                       alone.uncertainty.epistemic])) < 1e-6


def test_the_cost_the_batcher_asks_for_counts_windows_and_refuses_past_the_most():
    from model.predictor import Predictor

    pred = Predictor.load()
    text = FILLER * 3
    n = len(pred.ckpt.tokenizer.bodies([text])[0])
    assert pred.windows(["short", text]) == [1, count(n, pred.ckpt.cfg.network)]
    pred.ckpt.cfg.views.max_windows = 2
    with pytest.raises(TooLong, match="at most 2 windows"):
        pred.windows([text])
