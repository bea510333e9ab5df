"""The time left in a training run, printed as each stage starts (model/progress.py)."""
from __future__ import annotations

from model import progress
from model.progress import Clock
from model.settings import TrainSettings


def test_the_time_left_follows_this_machines_pace(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    clock = Clock({"a": 10.0, "b": 20.0, "c": 30.0}, write=lines.append)
    clock.start("a")
    assert lines[-1] == "[1/3] a: 0:00 so far, about 1:00 left in the run"
    now[0] += 20.0  # twice as slow as planned: what is left should take twice as long
    clock.start("b")
    assert lines[-1] == "[2/3] b: 0:20 so far, about 1:40 left in the run"
    now[0] += 20.0  # then as planned: the pace is 40 s for 30 planned
    clock.start("c")
    assert lines[-1] == "[3/3] c: 0:40 so far, about 0:40 left in the run"
    now[0] += 3630.0
    clock.close()
    assert lines[-1] == "trained in 1:01:10: a 0:20, b 0:20, c 1:00:30"


def test_the_plan_leaves_out_what_is_cached_or_off():
    s = TrainSettings()
    full = progress.plan(s, 2000, 300, 0, 200_000, teacher=True, background_cached=False)
    assert list(full) == ["the teacher", "the teacher's embeddings of the background", "training the compact model",
                          "fitting the familiarity and calibration"]
    assert all(cost > 0 for cost in full.values())
    cached = progress.plan(s, 2000, 300, 0, 200_000, teacher=True, background_cached=True)
    assert "the teacher's embeddings of the background" not in cached
    assert list(progress.plan(s, 2000, 300, 0, 0, teacher=False, background_cached=False)) == [
        "training the compact model", "fitting the familiarity and calibration"]


def test_the_teachers_cost_follows_the_length_of_the_texts():
    s = TrainSettings()
    short = progress.plan(s, 2000, 300, 0, 0, teacher=True, background_cached=True, pieces=30.0)
    long = progress.plan(s, 2000, 300, 0, 0, teacher=True, background_cached=True, pieces=120.0)
    assert long["the teacher"] == 4 * short["the teacher"]
    assert long["training the compact model"] == short["training the compact model"]
