"""The Open Inference Protocol's REST bodies as the served OpenAPI document states them
(server/core/oip_schema.py), against the live door: the documented request examples are
answered with bodies valid against the documented answer and shaped as its examples; the
metadata and health bodies are valid against theirs; what the document refuses the door
refuses, and what it allows in the ways the codec reads (strings for flags and numbers,
[N, 1] nesting, no outputs asked for) the door answers."""
from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.core import oip

INFER = "/v2/models/bet/infer"
GOOD_INPUT = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["A fine, warm film."]}


@pytest.fixture(scope="module")
def document(served) -> dict[str, Any]:
    return served.http.get("/openapi.json").json()


def _valid(document: dict[str, Any], component: str, body: Any) -> list[str]:
    registry = Registry().with_resource("urn:bet", Resource.from_contents(document, DRAFT202012))
    validator = Draft202012Validator({"$ref": f"urn:bet#/components/schemas/{component}"}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def test_the_documented_examples_are_answered_as_documented(served, document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    requests, answers = schemas["InferenceRequest"]["examples"], schemas["InferenceResponse"]["examples"]
    assert len(requests) == len(answers) >= 2
    for request, documented in zip(requests, answers, strict=True):
        reply = served.http.post(INFER, json=request)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert not _valid(document, "InferenceResponse", body)
        assert body.get("id") == documented.get("id")
        assert [(o["name"], o["datatype"], o["shape"][0]) for o in body["outputs"]] == [
            (o["name"], o["datatype"], o["shape"][0]) for o in documented["outputs"]]


@pytest.mark.parametrize(("path", "component"), [
    ("/v2", "ServerMetadataResponse"), ("/v2/health/live", "ServerLiveResponse"),
    ("/v2/health/ready", "ServerReadyResponse"), ("/v2/models/bet", "ModelMetadataResponse"),
    ("/v2/models/bet/ready", "ModelReadyResponse"), ("/v2/models/other", "InferenceErrorResponse"),
])
def test_metadata_and_health_bodies_are_as_documented(served, document: dict[str, Any], path: str,
                                                       component: str) -> None:
    reply = served.http.get(path)
    assert str(reply.status_code) in document["paths"][path.replace("/bet", "/{model}").replace(
        "/other", "/{model}")]["get"]["responses"]
    assert not _valid(document, component, reply.json())
    if component == "ModelMetadataResponse":
        assert [o["name"] for o in reply.json()["outputs"]] == [o.name for o in oip.OUTPUTS]


def _body(**change: Any) -> dict[str, Any]:
    inputs = change.pop("inputs", [{**GOOD_INPUT, **change.pop("input", {})}])
    return {"inputs": inputs, **change}


REFUSED = {  # the document does not allow it; the door answers 400, or 422 for texts
    "datatype FP32": _body(input={"datatype": "FP32", "data": [1.0]}),
    "shape [1, 2]": _body(input={"shape": [1, 2], "data": ["a", "b"]}),
    "shape [0]": _body(input={"shape": [0], "data": []}),
    "shape as strings": _body(input={"shape": ["1"]}),
    "data one string, not a list": _body(input={"data": "A fine film."}),
    "data nested twice": _body(input={"data": [[["A fine film."]]]}),
    "data nested two to a row": _body(input={"shape": [2], "data": [["a", "b"]]}),
    "data a number": _body(input={"data": [3]}),
    "text blank": _body(input={"data": ["   "]}),
    "two inputs": _body(inputs=[GOOD_INPUT, GOOD_INPUT]),
    "name not a string": _body(input={"name": 3}),
    "unknown output": _body(outputs=[{"name": "logits"}]),
    "threshold above 1": _body(parameters={"confidence_threshold": 1.5}),
    "threshold a word": _body(parameters={"confidence_threshold": "high"}),
    "threshold with spaces": _body(parameters={"confidence_threshold": " 0.5"}),
    "threshold null": _body(parameters={"confidence_threshold": None}),
    "flag yes": _body(parameters={"return_cot": "yes"}),
    "flag a number": _body(parameters={"return_uncertainty": 1}),
    "binary_data_output not a flag": _body(parameters={"binary_data_output": "sure"}),
    "binary_data not a flag": _body(outputs=[{"name": "label", "parameters": {"binary_data": 2}}]),
    "id a number": _body(id=7),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_the_document_refuses_the_door_refuses(served, document: dict[str, Any], case: str) -> None:
    assert _valid(document, "InferenceRequest", REFUSED[case]), "the document allows it"
    reply = served.http.post(INFER, json=REFUSED[case])
    assert reply.status_code in (400, 422), (case, reply.status_code, reply.text)
    assert not _valid(document, "InferenceErrorResponse", reply.json())


ANSWERED = {  # the document allows it; the door answers it
    "flags and threshold as strings": _body(parameters={"return_cot": "TRUE", "return_uncertainty": "false",
                                                        "confidence_threshold": "0.25"}),
    "threshold an integer": _body(parameters={"confidence_threshold": 1}),
    "[N, 1] nested": _body(input={"shape": [2, 1], "data": [["Loved it."], ["Hated it."]]}),
    "[N, 1] flat": _body(input={"shape": [2, 1], "data": ["Loved it.", "Hated it."]}),
    "outputs empty": _body(outputs=[]),
    "outputs null, other fields and parameters": _body(outputs=None, model_name="bet", parameters={"x": 1}),
    "256 texts": _body(input={"shape": [256], "data": ["ok"] * 256}),
}


@pytest.mark.parametrize("case", list(ANSWERED))
def test_what_the_document_allows_the_door_answers(served, document: dict[str, Any], case: str) -> None:
    assert not _valid(document, "InferenceRequest", ANSWERED[case])
    reply = served.http.post(INFER, json=ANSWERED[case])
    assert reply.status_code == 200, (case, reply.text)
    assert not _valid(document, "InferenceResponse", reply.json())
