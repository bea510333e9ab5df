"""A user's own three-label task, end to end (issue 35): `bet train` on a made-up CSV whose
labels appear in an order that is not their sorted one, then `bet serve --model` on free
loopback ports, asked on both native doors and on the Open Inference Protocol's two. Every
place that lists the labels lists them in the order the checkpoint stores them (labels.json),
and the answers hold for three labels what they hold for two."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from server.core import oip
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from server.grpc.gen.inference import open_inference_grpc_pb2 as oip_pb
from server.grpc.gen.inference import open_inference_grpc_pb2_grpc as oip_grpc
from tests.harness import BET, oip_grpc_request, oip_tensors_from_grpc, start_bet_serve, stop

# Label -> (sentences, endings): every sentence with every ending is a row. The labels first
# appear in this order, which is not their sorted one.
TOPICS = {
    "sports": (["the striker scored a late goal", "the team won the match", "the goalkeeper saved a penalty",
                "fans cheered in the stadium", "the coach praised the defence", "the referee showed a red card",
                "a record crowd watched the final", "the runner finished the marathon"],
               ["tonight", "in the second half", "after extra time", "at the league final"]),
    "cooking": (["simmer the onions in butter", "bake the bread in a hot oven", "whisk the eggs with sugar",
                 "season the soup with salt and pepper", "chop the garlic and fresh basil",
                 "roast the chicken with lemon", "knead the dough until smooth", "stir the sauce over low heat"],
                ["for ten minutes", "before serving", "in a large pan", "until golden"]),
    "finance": (["the bank raised interest rates", "shares fell on the stock market", "investors sold their bonds",
                 "the company reported quarterly profits", "inflation pushed bond yields higher",
                 "the fund bought more equities", "the central bank cut its forecast",
                 "traders watched the currency slide"],
                ["this quarter", "on wall street", "amid recession fears", "after the earnings call"]),
}
APPEARANCE = list(TOPICS)
# Seconds, not minutes: a tiny network, no teacher, no background text, a few hundred
# fragments per epoch. What the flags cannot set comes from --config.
SETTINGS = {"crops_per_epoch": 300, "network": {"n_heads": 2, "d_ff": 64, "embed_dim": 16}}
FLAGS = ["--no-distill", "--background", "none", "--d-model", "32", "--layers", "1", "--epochs", "3"]
# One text of each label as trained, texts of two topics at once, and texts of none.
ASKED = ["the team won the match tonight", "bake the bread in a hot oven before serving",
         "shares fell on the stock market this quarter", "the team bought shares before the final",
         "the chef sold bonds after baking bread", "qzx vlorp ttrn wub", "Der Hund schläft im Garten."]
EXACT = 1e-9  # what must hold exactly, up to float round-off
SAME = 1e-6  # the contract's "same numbers" across doors and batch mates


def _rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Training and validation rows, the labels interleaved in order of appearance: each
    fourth row of a label (a different ending each time) is held out for validation."""
    train, val = [], []
    for i in range(8):
        for label, (sentences, endings) in TOPICS.items():
            for j, ending in enumerate(endings):
                (val if (i + j) % 4 == 0 else train).append({"text": f"{sentences[i]} {ending}", "label": label})
    return train, val


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class Served:
    model: Path
    labels: list[str]  # as the checkpoint stores them
    train_rows: list[dict[str, str]]
    http: httpx.Client
    stub: pb_grpc.InferenceStub
    oip: oip_grpc.GRPCInferenceServiceStub


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("three-labels")
    train, val = _rows()
    (root / "settings.json").write_text(json.dumps(SETTINGS), encoding="utf-8")
    done = subprocess.run(
        [BET, "train", "--data", str(_write_csv(root / "train.csv", train)),
         "--val", str(_write_csv(root / "val.csv", val)), "--out", str(root / "model"),
         "--config", str(root / "settings.json"), *FLAGS],
        capture_output=True, text=True, timeout=300, env={**os.environ, "BET_CACHE_DIR": str(root / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    labels = json.loads((root / "model" / "labels.json").read_text(encoding="utf-8"))
    proc, rest, target = start_bet_serve({"BET_CACHE_DIR": str(root / "cache")}, ["--model", str(root / "model")])
    channel = grpc.insecure_channel(target)
    try:
        with httpx.Client(base_url=rest, timeout=60) as http:
            yield Served(root / "model", labels, train, http, pb_grpc.InferenceStub(channel),
                         oip_grpc.GRPCInferenceServiceStub(channel))
    finally:
        channel.close()
        stop(proc, 30)


def _check(answer: dict[str, Any], labels: list[str], *, ordered: bool) -> None:
    """One native answer, as a dict of the REST fields (gRPC's map has no order)."""
    probs = answer["probabilities"]
    assert (list(probs) == labels) if ordered else (sorted(probs) == sorted(labels)), probs
    row = [probs[name] for name in labels]
    assert math.fsum(row) == pytest.approx(1.0, abs=EXACT)
    assert all(0.0 <= p <= 1.0 for p in row)
    assert 0 <= answer["label_id"] < len(labels)
    assert answer["prediction"] == labels[answer["label_id"]] == labels[int(np.argmax(row))]
    assert answer["confidence"] == pytest.approx(max(row), abs=EXACT)
    u = answer["uncertainty"]
    assert u["total"] == pytest.approx(u["aleatoric"] + u["epistemic"], abs=EXACT)
    assert u["epistemic"] >= 0.0 and u["aleatoric"] >= -EXACT
    assert u["total"] <= math.log(len(labels)) + EXACT  # the entropy of three labels at most


def _from_pb(message: pb.PredictResponse) -> dict[str, Any]:
    return {"prediction": message.prediction, "label_id": message.label_id, "confidence": message.confidence,
            "probabilities": dict(message.probabilities), "model_version": message.model_version,
            "uncertainty": {"total": message.uncertainty.total, "aleatoric": message.uncertainty.aleatoric,
                            "epistemic": message.uncertainty.epistemic},
            "cot_length": message.cot_length if message.HasField("cot_length") else None,
            "reasoning": list(message.reasoning)}


def _same(a: dict[str, Any], b: dict[str, Any], labels: list[str]) -> None:
    assert (a["prediction"], a["label_id"], a["model_version"]) == (b["prediction"], b["label_id"], b["model_version"])
    assert [a["probabilities"][x] for x in labels] == pytest.approx([b["probabilities"][x] for x in labels], abs=SAME)
    assert a["confidence"] == pytest.approx(b["confidence"], abs=SAME)
    for part in ("total", "aleatoric", "epistemic"):
        assert a["uncertainty"][part] == pytest.approx(b["uncertainty"][part], abs=SAME)


def test_every_door_lists_the_labels_in_the_checkpoints_order(three: Served) -> None:
    # `bet train` stores them sorted (model/train.py), whatever order the rows gave them in:
    # label_id indexes that order everywhere
    assert three.labels == sorted(APPEARANCE) != APPEARANCE
    config = json.loads((three.model / "config.json").read_text(encoding="utf-8"))
    assert config["network"]["n_labels"] == 3
    assert three.http.get("/v1/model").json()["labels"] == three.labels
    assert list(three.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30).labels) == three.labels


def test_native_doors_answer_three_labels_alike(three: Served) -> None:
    labels = three.labels
    options = {"confidence_threshold": 0.0, "return_cot": True}
    rest_one = [three.http.post("/v1/predict", json={"text": t, **options}) for t in ASKED]
    assert all(r.status_code == 200 for r in rest_one), [r.text for r in rest_one]
    rest_batch = three.http.post("/v1/predict/batch", json={"texts": ASKED, **options})
    assert rest_batch.status_code == 200, rest_batch.text
    grpc_one = [three.stub.Predict(pb.PredictRequest(text=t, **options), timeout=30) for t in ASKED]
    grpc_batch = three.stub.PredictBatch(pb.PredictBatchRequest(texts=ASKED, **options), timeout=30)
    answers = {"rest": [r.json() for r in rest_one], "rest batch": rest_batch.json()["predictions"],
               "grpc": [_from_pb(m) for m in grpc_one], "grpc batch": [_from_pb(m) for m in grpc_batch.predictions]}
    for door, got in answers.items():
        assert len(got) == len(ASKED), door
        for answer in got:
            _check(answer, labels, ordered=door.startswith("rest"))
            assert answer["cot_length"] >= 1 and answer["reasoning"], door
        for a, b in zip(got, answers["rest"], strict=True):
            _same(a, b, labels)
    # the texts as trained answer their own label, each another one
    assert [a["prediction"] for a in answers["rest"][:3]] == APPEARANCE


def test_the_training_texts_are_answered_right(three: Served) -> None:
    texts = [r["text"] for r in three.train_rows]
    reply = three.http.post("/v1/predict/batch", json={"texts": texts, "confidence_threshold": 0.0})
    assert reply.status_code == 200, reply.text
    got = [a["prediction"] for a in reply.json()["predictions"]]
    assert got == [r["label"] for r in three.train_rows]


def _infer_body(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
            "parameters": {"confidence_threshold": 0.0}}


def test_the_open_inference_protocol_answers_n_by_three(three: Served) -> None:
    labels, n = three.labels, len(ASKED)
    native = three.http.post("/v1/predict/batch", json={"texts": ASKED, "confidence_threshold": 0.0}).json()
    native = native["predictions"]
    rest = three.http.post("/v2/models/bet/infer", json=_infer_body(ASKED))
    assert rest.status_code == 200, rest.text
    answers = {"rest": {o["name"]: (o["datatype"], o["shape"], o["data"]) for o in rest.json()["outputs"]}}
    for raw in (False, True):
        reply = three.oip.ModelInfer(oip_grpc_request(ASKED, raw=raw), timeout=30)
        answers[f"grpc raw={raw}"] = oip_tensors_from_grpc(reply)
    for door, got in answers.items():
        assert got["probabilities"][:2] == ("FP64", [n, 3]), door
        assert got["label"][:2] == ("BYTES", [n]), door
        assert got["label_id"][:2] == ("INT32", [n]), door
        assert got["confidence"][:2] == ("FP64", [n]), door
        for name in ("uncertainty_total", "uncertainty_aleatoric", "uncertainty_epistemic"):
            assert got[name][:2] == ("FP64", [n]), (door, name)
        probs = np.asarray(got["probabilities"][2]).reshape(n, 3)  # row-major: one row per text
        # columns in the checkpoint's label order, each row the native map in that order
        want = [[a["probabilities"][x] for x in labels] for a in native]
        assert probs.ravel().tolist() == pytest.approx(np.ravel(want).tolist(), abs=SAME)
        assert np.allclose(probs.sum(1), 1.0, atol=EXACT)
        ids = got["label_id"][2]
        assert ids == [a["label_id"] for a in native] == probs.argmax(1).tolist()
        assert got["label"][2] == [labels[i] for i in ids] == [a["prediction"] for a in native]
        total, aleatoric, epistemic = (np.asarray(got[f"uncertainty_{p}"][2]) for p in
                                       ("total", "aleatoric", "epistemic"))
        assert np.allclose(total, aleatoric + epistemic, atol=EXACT) and np.all(epistemic >= 0)


def test_model_metadata_gives_the_outputs_shapes_for_three_labels(three: Served) -> None:
    want = {o.name: (o.datatype, [-1, 3] if o.per_label else [-1]) for o in oip.OUTPUTS}
    assert want["probabilities"] == ("FP64", [-1, 3])
    rest = three.http.get("/v2/models/bet").json()
    assert {o["name"]: (o["datatype"], o["shape"]) for o in rest["outputs"]} == want
    assert [o["name"] for o in rest["outputs"]] == [o.name for o in oip.OUTPUTS]
    assert rest["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    meta = three.oip.ModelMetadata(oip_pb.ModelMetadataRequest(name="bet"), timeout=30)
    assert {o.name: (o.datatype, list(o.shape)) for o in meta.outputs} == want
    assert list(meta.versions) == rest["versions"] == [three.http.get("/v1/model").json()["version"]]
