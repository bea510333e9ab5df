"""The OpenAPI document that `make clients` exports without a server is the one a served
app answers (but for info.version: the package's, not the model's); it is valid OpenAPI 3.1,
every operation declares its path parameters, and every example a component schema carries
(at any depth) is valid against that schema."""
from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.core import oip_schema

EXPORT = Path(__file__).resolve().parents[2] / "clients" / "tools" / "export_openapi.py"


def _exported() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("export_openapi", EXPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.document()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return _exported()


def test_exported_document_is_the_served_one(served, document: dict[str, Any]) -> None:
    exported = dict(document, info=dict(document["info"]))
    served_document = served.http.get("/openapi.json").json()
    assert served_document["info"].pop("version") == served.server.service.version
    exported["info"].pop("version")
    assert exported == served_document


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert not errors, "\n".join(errors)


def test_every_operation_declares_its_path_parameters(document: dict[str, Any]) -> None:
    missing = []
    for path, item in document["paths"].items():
        wanted = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                        if p.get("in") == "path" and p.get("required")}
            missing += [f"{method.upper()} {path}: {name}" for name in sorted(wanted - declared)]
    assert not missing


def _validator(document: dict[str, Any], component: str) -> Draft202012Validator:
    registry = Registry().with_resource("urn:bet", Resource.from_contents(document, DRAFT202012))
    return Draft202012Validator({"$ref": f"urn:bet#/components/schemas/{component}"}, registry=registry)


@pytest.mark.parametrize("component", sorted(oip_schema.components()))
def test_the_protocol_bodies_are_documented_with_valid_examples(document: dict[str, Any], component: str) -> None:
    schema = document["components"]["schemas"][component]
    examples = schema.get("examples", [])
    if not component.startswith(("Output", "Request", "Metadata")):  # those are parts, shown in the whole's
        assert examples, f"{component} has no example"
    for example in examples:
        errors = [e.message for e in _validator(document, component).iter_errors(example)]
        assert not errors, (component, example, errors)


# Where JSON Schema 2020-12 holds subschemas: one schema, a list of them, or a map of them.
_ONE = ("additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")


def _pointer(*segments: str | int) -> str:
    return "".join("/" + quote(str(s).replace("~", "~0").replace("/", "~1"), safe="") for s in segments)


def _schema_examples(schema: Any, at: str) -> Iterator[tuple[str, Any]]:
    """(JSON pointer of the schema, example) for the schema and every subschema in it: its
    `examples` (a list) and the older `example` (one) alike."""
    if not isinstance(schema, dict):
        return
    yield from ((at, example) for example in schema.get("examples", []))
    if "example" in schema:
        yield at, schema["example"]
    for keyword in _ONE:
        yield from _schema_examples(schema.get(keyword), at + _pointer(keyword))
    for keyword in _LIST:
        for i, sub in enumerate(schema.get(keyword, [])):
            yield from _schema_examples(sub, at + _pointer(keyword, i))
    for keyword in _MAP:
        for name, sub in schema.get(keyword, {}).items():
            yield from _schema_examples(sub, at + _pointer(keyword, name))


def _invalid_examples(document: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The components whose schemas carry examples, and one line per invalid example."""
    registry = Registry().with_resource("urn:bet", Resource.from_contents(document, DRAFT202012))
    checked: set[str] = set()
    errors: list[str] = []
    for name, schema in document["components"]["schemas"].items():
        for at, example in _schema_examples(schema, _pointer("components", "schemas", name)):
            checked.add(name)
            validator = Draft202012Validator({"$ref": f"urn:bet#{at}"}, registry=registry,
                                             format_checker=Draft202012Validator.FORMAT_CHECKER)
            errors += [f"{at} {'/'.join(map(str, e.absolute_path))}: {e.message}"
                       for e in validator.iter_errors(example)]
    return checked, errors


def test_every_component_schema_example_is_valid(document: dict[str, Any]) -> None:
    """Native and protocol schemas alike: an example a client or a reader copies is a body the
    schema allows (a subclass that inherits its base's example, missing its own required
    fields, is the mistake this catches)."""
    checked, errors = _invalid_examples(document)
    assert {"ErrorBody", "LowConfidenceBody", "LowConfidenceBatchBody", "PredictResponse",
            "InferenceRequest", "InferenceResponse"} <= checked
    assert not errors, "\n".join(errors)


def test_an_invalid_example_is_found_at_any_depth(document: dict[str, Any]) -> None:
    """The check can fail: an inherited example without the required field, and a bad
    example on a property, are both reported."""
    schemas = document["components"]["schemas"]
    broken = {**document, "components": {**document["components"], "schemas": {
        **schemas,
        "LowConfidenceBatchBody": {**schemas["LowConfidenceBatchBody"], "examples": schemas["ErrorBody"]["examples"]},
        "Uncertainty": {**schemas["Uncertainty"], "properties": {
            **schemas["Uncertainty"]["properties"], "total": {"type": "number", "examples": ["high"]}}},
    }}}
    _, errors = _invalid_examples(broken)
    assert len(errors) == 2, errors
    assert any("LowConfidenceBatchBody" in e and "'predictions' is a required property" in e for e in errors)
    assert any("Uncertainty/properties/total" in e for e in errors)


def test_the_request_schema_states_the_codecs_rules(document: dict[str, Any]) -> None:
    """What the codec refuses, the schema does not allow (and it can fail: each is a body
    that an older, looser document allowed)."""
    validator = _validator(document, "InferenceRequest")
    good = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}
    assert validator.is_valid(good)
    for change in ({"datatype": "FP32"}, {"shape": [1, 2]}, {"shape": [0]}, {"shape": [257]}, {"data": "fine"},
                   {"data": [["a", "b"]]}, {"data": [[["a"]]]}, {"data": [" "]}, {"data": [3]}):
        assert not validator.is_valid({"inputs": [{**good["inputs"][0], **change}]}), change
    for parameters in ({"confidence_threshold": 1.5}, {"confidence_threshold": "high"}, {"return_cot": "yes"},
                       {"binary_data_output": 1}):
        assert not validator.is_valid({**good, "parameters": parameters}), parameters
    assert not validator.is_valid({**good, "outputs": [{"name": "logits"}]})
    assert not validator.is_valid({"inputs": good["inputs"] * 2})
