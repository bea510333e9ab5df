"""The Open Inference Protocol through the clients platform teams run, unmodified: Triton's
tritonclient (http and grpc) and KServe's SDK (REST v2 and gRPC), each in its own virtual
environment with its own grpcio/protobuf (make oip-clients). Each script (triton_check.py,
kserve_check.py) calls a real `bet serve` and prints what it got; here every answer is held to
the native POST /v1/predict answer for the same text, to 1e-6."""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.oip.conftest import OIP, TEXTS, Bet, client_python

SCRIPT_TIMEOUT_S = 240
TOL = 1e-6
DEFAULT_THRESHOLD = 0.5  # the OIP default when the caller sets none (and no refusal)
OUTPUT_TYPES = {
    "label": "BYTES", "label_id": "INT32", "confidence": "FP64", "probabilities": "FP64",
    "uncertainty_total": "FP64", "uncertainty_aleatoric": "FP64", "uncertainty_epistemic": "FP64",
    "accepted": "BOOL",
}
UNCERTAINTY = {"uncertainty_total": "total", "uncertainty_aleatoric": "aleatoric",
               "uncertainty_epistemic": "epistemic"}
COT_TYPES = {"cot_length": "INT32", "reasoning": "BYTES"}
NUMPY_DTYPES = {"BYTES": "object", "INT32": "int32", "FP64": "float64", "BOOL": "bool"}


def run_script(python: Path, script: str, bet: Bet, texts_file: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), str(OIP / script), "--rest", bet.rest_hostport, "--grpc", bet.grpc_target,
         "--texts-file", str(texts_file)],
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, env=env, cwd=OIP)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oip") / "texts.json"
    path.write_text(json.dumps(TEXTS, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def triton(bet: Bet, texts_file: Path) -> dict[str, Any]:
    return run_script(client_python("tritonclient"), "triton_check.py", bet, texts_file)


@pytest.fixture(scope="module")
def kserve(bet: Bet, texts_file: Path) -> dict[str, Any]:
    return run_script(client_python("kserve"), "kserve_check.py", bet, texts_file)


@pytest.fixture(scope="module")
def native(bet: Bet) -> Iterator[dict[str, Any]]:
    """The native answers and the labels: what every OIP answer must equal."""
    yield {"answers": [bet.native(t) for t in TEXTS], "cot": [bet.native(t, cot=True) for t in TEXTS],
           "labels": bet.labels()}


# ---------------------------------------------------------------- reading a report


def step(report: dict[str, Any], path: str) -> Any:
    """A step's value; a step that raised in the client fails here with what it raised."""
    node: Any = report
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"the report has no {path!r}"
        node = node[part]
    if isinstance(node, dict) and isinstance(node.get("error"), dict) and "traceback" in node:
        pytest.fail(f"{path}: the client raised {node['error']}\n{node['traceback']}")
    if isinstance(node, dict) and set(node) == {"error"} and isinstance(node["error"], dict):
        pytest.fail(f"{path}: the client raised {node['error']}")
    return node


def flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in flat(v)]
    return [value]


def per_text(out: dict[str, Any], n: int) -> list[list[Any]]:
    """An output's values as one row per text, whatever trailing dimensions it has."""
    assert out["shape"][0] == n, f"first dimension {out['shape']} is not the {n} texts"
    assert out["numpy_shape"] is not None and out["numpy_shape"][0] == n, out["numpy_shape"]
    values = flat(out["data"])
    assert len(values) % n == 0, (out["shape"], values)
    width = len(values) // n
    return [values[i * width:(i + 1) * width] for i in range(n)]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=TOL)


def assert_answers(record: dict[str, Any], native: dict[str, Any], *, threshold: float = DEFAULT_THRESHOLD,
                   uncertainty: bool = True, cot: bool = False, only: list[str] | None = None,
                   version: bool = True, where: str = "") -> None:
    """Every output of one infer call equals the native answers for TEXTS, to 1e-6."""
    n, labels = len(TEXTS), native["labels"]
    answers = native["cot"] if cot else native["answers"]
    expected = dict(OUTPUT_TYPES)
    if not uncertainty:
        expected = {k: v for k, v in expected.items() if k not in UNCERTAINTY}
    if cot:
        expected |= COT_TYPES
    if only is not None:
        expected = {k: v for k, v in expected.items() if k in only}
    outputs = record["outputs"]
    assert sorted(outputs) == sorted(expected), f"{where}: outputs {sorted(outputs)}, expected {sorted(expected)}"
    if version:
        assert record["model_version"] == answers[0]["model_version"], (where, record["model_version"])
    assert record["model_name"] == "bet", (where, record["model_name"])
    for name, datatype in expected.items():
        out = outputs[name]
        assert out["datatype"] == datatype, f"{where}: {name} is {out['datatype']}, expected {datatype}"
        assert out["numpy_dtype"] == NUMPY_DTYPES[datatype], f"{where}: {name} read as {out['numpy_dtype']}"
    rows = {name: per_text(outputs[name], n) for name in expected}
    if "probabilities" in rows:
        assert outputs["probabilities"]["shape"] == [n, len(labels)], (where, outputs["probabilities"]["shape"])
    for i, answer in enumerate(answers):
        at = f"{where}: text {i} ({TEXTS[i]!r})"
        got = {name: r[i] for name, r in rows.items()}
        if "label" in got:
            assert got["label"] == [answer["prediction"]], (at, got["label"], answer)
        if "label_id" in got:
            assert got["label_id"] == [answer["label_id"]], (at, got["label_id"], answer)
        if "confidence" in got:
            assert close(got["confidence"][0], answer["confidence"]), (at, got["confidence"], answer)
        if "probabilities" in got:
            want = [answer["probabilities"][label] for label in labels]
            assert all(map(close, got["probabilities"], want)), (at, got["probabilities"], want)
        for name, key in UNCERTAINTY.items():
            if name in got:
                assert close(got[name][0], answer["uncertainty"][key]), (at, name, got[name], answer["uncertainty"])
        if "accepted" in got:
            assert got["accepted"] == [answer["confidence"] >= threshold], (at, got["accepted"], threshold, answer)
        if "cot_length" in got:
            assert got["cot_length"] == [answer["cot_length"]], (at, got["cot_length"], answer)
        if "reasoning" in got:
            assert json.loads(got["reasoning"][0]) == answer["reasoning"], (at, got["reasoning"], answer)


def assert_refused(record: dict[str, Any], status: str, where: str) -> None:
    assert record.get("refused") is True, f"{where}: not refused: {record}"
    assert record.get("message") or record.get("details") or record.get("str"), where
    if status:
        got = record.get("status") or record.get("code") or record.get("status_code")
        assert str(got) == status, f"{where}: refused with {got}, expected {status}: {record}"


def assert_model_metadata(meta: dict[str, Any], native: dict[str, Any], where: str) -> None:
    assert meta["name"] == "bet", (where, meta)
    assert meta["versions"] == [native["answers"][0]["model_version"]], (where, meta)
    assert meta["platform"] == "pytorch", (where, meta)
    inputs = [{**i, "shape": [int(d) for d in i["shape"]]} for i in meta["inputs"]]
    assert inputs == [{"name": "text", "datatype": "BYTES", "shape": [-1]}], (where, meta["inputs"])
    outputs = {o["name"]: o["datatype"] for o in meta["outputs"]}
    for name, datatype in (OUTPUT_TYPES | COT_TYPES).items():
        if name in COT_TYPES and name not in outputs:
            continue  # only with return_cot: a server may leave them out of the metadata
        assert outputs.get(name) == datatype, f"{where}: output {name} is {outputs.get(name)}, expected {datatype}"


# ---------------------------------------------------------------- tritonclient

DOORS = ["http", "grpc"]


@pytest.mark.parametrize("door", DOORS)
def test_triton_health(triton: dict[str, Any], door: str) -> None:
    assert step(triton, f"{door}.live") is True
    assert step(triton, f"{door}.ready") is True
    assert step(triton, f"{door}.model_ready") is True
    assert step(triton, f"{door}.model_ready_version") is True


@pytest.mark.parametrize("door", DOORS)
def test_triton_server_metadata(triton: dict[str, Any], door: str) -> None:
    meta = step(triton, f"{door}.server_metadata")
    assert meta["name"] == "bet", meta
    assert isinstance(meta["version"], str) and meta["version"], meta
    assert {"binary_tensor_data"} <= set(meta.get("extensions", [])), meta


def test_server_metadata_version_is_the_server_version(triton: dict[str, Any]) -> None:
    """The spec: GET /v2 gives the *server's* version (Triton's answers its own release),
    which is the bet distribution's version; the model's version is in the model metadata."""
    server_version = importlib.metadata.version("bet")
    for door in DOORS:
        assert step(triton, f"{door}.server_metadata")["version"] == server_version, door


@pytest.mark.parametrize("door", DOORS)
def test_triton_model_metadata(triton: dict[str, Any], native: dict[str, Any], door: str) -> None:
    assert_model_metadata(step(triton, f"{door}.model_metadata"), native, door)


TRITON_INFER = [
    ("http", "binary", {}),
    ("http", "json_input", {}),
    ("http", "json", {}),
    ("http", "shape_n1", {}),
    ("http", "version", {}),
    ("http", "subset_binary", {"only": ["label", "confidence", "uncertainty_epistemic"]}),
    ("http", "subset_mixed", {"only": ["label", "probabilities"]}),
    ("http", "threshold", {"threshold": 0.9}),
    ("http", "cot", {"cot": True}),
    ("http", "no_uncertainty", {"uncertainty": False}),
    ("grpc", "binary", {}),
    ("grpc", "shape_n1", {}),
    ("grpc", "version", {}),
    ("grpc", "subset", {"only": ["label", "confidence", "uncertainty_epistemic"]}),
    ("grpc", "threshold", {"threshold": 0.9}),
    ("grpc", "cot", {"cot": True}),
    ("grpc", "no_uncertainty", {"uncertainty": False}),
]


@pytest.mark.parametrize("door,case,expect", TRITON_INFER, ids=[f"{d}-{c}" for d, c, _ in TRITON_INFER])
def test_triton_infer_equals_the_native_answer(triton: dict[str, Any], native: dict[str, Any], door: str,
                                               case: str, expect: dict[str, Any]) -> None:
    assert_answers(step(triton, f"{door}.infer.{case}"), native, where=f"tritonclient.{door} {case}", **expect)


def test_triton_http_binary_outputs_as_asked(triton: dict[str, Any]) -> None:
    """No outputs named: tritonclient asks for binary_data_output, so every output is binary;
    each output named with binary_data=False is JSON; a mix is answered as asked."""
    binary = {n: o["binary"] for n, o in step(triton, "http.infer.binary")["outputs"].items()}
    assert all(binary.values()), binary
    json_input = {n: o["binary"] for n, o in step(triton, "http.infer.json_input")["outputs"].items()}
    assert all(json_input.values()), json_input
    as_json = {n: o["binary"] for n, o in step(triton, "http.infer.json")["outputs"].items()}
    assert not any(as_json.values()), as_json
    subset = {n: o["binary"] for n, o in step(triton, "http.infer.subset_binary")["outputs"].items()}
    assert all(subset.values()), subset
    mixed = {n: o["binary"] for n, o in step(triton, "http.infer.subset_mixed")["outputs"].items()}
    assert mixed == {"label": False, "probabilities": True}, mixed


@pytest.mark.parametrize("door", DOORS)
def test_triton_request_id_is_echoed(triton: dict[str, Any], door: str) -> None:
    assert step(triton, f"{door}.infer.binary")["id"] == f"{door}-binary"


def test_triton_grpc_outputs_are_raw(triton: dict[str, Any]) -> None:
    """tritonclient.grpc reads only raw_output_contents (and bytes_contents): one per output."""
    record = step(triton, "grpc.infer.binary")
    assert record["raw_output_contents"] == len(record["outputs"]), record["raw_output_contents"]


@pytest.mark.parametrize("door,status", [("http", "404"), ("grpc", "StatusCode.NOT_FOUND")])
def test_triton_unknown_model_and_version_refused(triton: dict[str, Any], door: str, status: str) -> None:
    assert_refused(step(triton, f"{door}.unknown_model.infer"), status, f"{door} infer of an unknown model")
    assert_refused(step(triton, f"{door}.unknown_model.metadata"), status, f"{door} metadata of an unknown model")
    assert_refused(step(triton, f"{door}.other_version.infer"), status, f"{door} infer of another version")
    assert "no-such-model" in step(triton, f"{door}.unknown_model.infer")["message"]


def test_triton_http_unknown_model_or_version_is_not_ready(triton: dict[str, Any]) -> None:
    assert step(triton, "http.unknown_model_ready") is False
    assert step(triton, "http.model_ready_other_version") is False


def test_triton_grpc_unknown_model_or_version_is_not_ready(triton: dict[str, Any]) -> None:
    for path in ("grpc.unknown_model_ready", "grpc.model_ready_other_version"):
        record = step(triton, path)
        # Either answer is the protocol's: NOT_FOUND, or ready=false.
        if record["refused"]:
            assert_refused(record, "StatusCode.NOT_FOUND", path)
        else:
            assert record["returned"] == "False", (path, record)


def test_triton_grpc_stream(triton: dict[str, Any], native: dict[str, Any]) -> None:
    """ModelStreamInfer: one answer per request, in order, and an error for an unknown model
    that leaves the stream open."""
    got = step(triton, "grpc.stream")
    assert len(got) == len(TEXTS) + 1, got
    for i, record in enumerate(got[:-1]):
        assert "error" not in record, (i, record)
        assert record["id"] == f"stream-{i}", record["id"]
        answer = native["answers"][i]
        assert record["outputs"]["label"]["data"] == [answer["prediction"]], (i, record)
        assert close(record["outputs"]["confidence"]["data"][0], answer["confidence"]), (i, record)
        assert record["outputs"]["uncertainty_epistemic"]["data"][0] == pytest.approx(
            answer["uncertainty"]["epistemic"], abs=TOL), (i, record)
        assert record["model_version"] == answer["model_version"], (i, record)
    assert "no-such-model" in got[-1]["error"]["message"], got[-1]


# ---------------------------------------------------------------- KServe's SDK


@pytest.mark.parametrize("door", ["rest", "grpc"])
def test_kserve_health(kserve: dict[str, Any], door: str) -> None:
    assert step(kserve, f"{door}.live") is True
    assert step(kserve, f"{door}.ready") is True
    assert step(kserve, f"{door}.model_ready") is True


def test_kserve_unknown_model(kserve: dict[str, Any]) -> None:
    assert step(kserve, "rest.unknown_model_ready") is False  # kserve: any non-2xx is "not ready"
    rest = step(kserve, "rest.unknown_model.infer")
    assert_refused(rest, "404", "kserve REST infer of an unknown model")
    assert "no-such-model" in rest["str"], rest  # kserve puts the body's "error" in the message
    grpc_ready = step(kserve, "grpc.unknown_model_ready")
    assert_refused(grpc_ready, "NOT_FOUND", "kserve gRPC ModelReady of an unknown model")
    assert_refused(step(kserve, "grpc.unknown_model.infer"), "NOT_FOUND", "kserve gRPC infer of an unknown model")


KSERVE_INFER = [
    # KServe's REST client reads a v2 answer with InferResponse.from_bytes, which drops
    # model_version (kserve 0.21.0): the wire's model_version is checked by tritonclient.
    ("rest", "numpy", {"version": False}),
    ("rest", "numpy_json", {"version": False}),
    ("rest", "list", {"version": False}),
    ("rest", "ndarray", {"version": False}),
    ("rest", "threshold", {"version": False, "threshold": 0.9}),
    ("rest", "cot", {"version": False, "cot": True}),
    ("rest", "no_uncertainty", {"version": False, "uncertainty": False}),
    ("grpc", "numpy", {}),
    ("grpc", "list", {}),
    ("grpc", "ndarray", {}),
    ("grpc", "threshold_string", {"threshold": 0.9}),
    ("grpc", "threshold_int", {"threshold": 1.0}),
    ("grpc", "cot", {"cot": True}),
    ("grpc", "no_uncertainty", {"uncertainty": False}),
]


@pytest.mark.parametrize("door,case,expect", KSERVE_INFER, ids=[f"{d}-{c}" for d, c, _ in KSERVE_INFER])
def test_kserve_infer_equals_the_native_answer(kserve: dict[str, Any], native: dict[str, Any], door: str,
                                               case: str, expect: dict[str, Any]) -> None:
    assert_answers(step(kserve, f"{door}.infer.{case}"), native, where=f"kserve {door} {case}", **expect)


@pytest.mark.parametrize("door", ["rest", "grpc"])
def test_kserve_request_id_is_echoed(kserve: dict[str, Any], door: str) -> None:
    assert step(kserve, f"{door}.infer.numpy")["id"] == f"kserve-{door}-numpy"


def test_kserve_grpc_client_cannot_send_a_double(kserve: dict[str, Any]) -> None:
    """Why confidence_threshold is also taken as a string or an int64: KServe's gRPC client
    refuses a float parameter itself."""
    record = step(kserve, "grpc.infer.threshold_float_refused_by_client")
    assert record["refused"] and record["type"] == "InvalidInput", record


# ---------------------------------------------------------------- the README's example


def test_readme_example_runs_as_written(bet: Bet, native: dict[str, Any]) -> None:
    python = client_python("tritonclient")
    example = OIP / "readme_example.py"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), str(example)], capture_output=True, text=True, timeout=120,
                          env={**env, "BET_URL": bet.rest_hostport})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    code = example.read_text()
    assert 10 <= len(code.strip().splitlines()) <= 15, "the README example should stay short"
    assert lines, done.stdout
    for line in lines:
        label, confidence, epistemic, text = line.split("\t")
        answer = bet.native(text)
        assert label == answer["prediction"], (line, answer)
        assert abs(float(confidence) - answer["confidence"]) <= 0.0005 + TOL, (line, answer)
        assert abs(float(epistemic.removeprefix("epistemic ")) - answer["uncertainty"]["epistemic"]) <= 0.0005 + TOL


def test_the_readme_shows_this_example_verbatim() -> None:
    """README.md's Open Inference Protocol example is tests/oip/readme_example.py, as run above."""
    readme = (OIP.parents[1] / "README.md").read_text()
    example = (OIP / "readme_example.py").read_text()
    assert f"```python\n{example}```" in readme, "README.md and tests/oip/readme_example.py differ"
