"""Shared fixtures: the embedded default model and a tiny model trained in seconds."""
from __future__ import annotations

import shutil

import pytest

from model.data import Row
from model.predictor import Predictor

POS = ["a charming , witty and moving film", "the best movie of the year , a delight", "warm , funny and smart",
       "beautifully acted and deeply felt", "an absolute joy from start to finish", "a clever , touching story"]
NEG = ["a dull , lifeless and boring mess", "the worst film i have seen in years", "tedious , flat and far too long",
       "badly acted and poorly written", "an utter waste of time", "clumsy , predictable and dreary"]


@pytest.fixture(scope="session")
def default_predictor() -> Predictor:
    return Predictor.load()


@pytest.fixture(scope="session")
def tiny_rows() -> list[Row]:
    rows = []
    for i in range(4):  # 48 rows
        rows += [Row(f"{t} {'!' * i}".strip(), "positive") for t in POS]
        rows += [Row(f"{t} {'.' * i}".strip(), "negative") for t in NEG]
    return rows


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_rows):
    from model.config import NetworkConfig
    from model.train import TrainSettings, train

    out = tmp_path_factory.mktemp("tiny") / "ckpt"
    settings = TrainSettings(epochs=2, distill=False, network=NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16))
    train(tiny_rows[:40], tiny_rows[40:], out, settings, state_dir=out.parent / "state")
    return out


@pytest.fixture()
def default_copy(tmp_path):
    from model.checkpoint import DEFAULT_DIR

    dst = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_DIR, dst)
    return dst
