"""Swagger UI at /docs and ReDoc at /redoc, rendered by a real browser that can reach no host
but 127.0.0.1: every operation of the OpenAPI document is on the page, with its examples."""
from __future__ import annotations

from typing import Any

from tests.browser.conftest import Browser
from tests.harness import ServerThread

ZERO_WIDTH = "\u200b"


def _operations(document: dict[str, Any]) -> set[str]:
    return {f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops}


def _distinctive(value: Any) -> str | None:
    """The string of an example to look for on the page: its longest string leaf."""
    def leaves(v: Any) -> list[str]:
        if isinstance(v, str):
            return [v]
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
        return [leaf for item in items for leaf in leaves(item)]

    return max(leaves(value), key=len, default=None)


def _example(document: dict[str, Any], content: dict[str, Any] | None) -> str | None:
    """The example of a request body or an answer, as the document gives it: the media
    type's, or its schema's (through a $ref, or the first of an anyOf)."""
    media = (content or {}).get("application/json") or {}
    if "example" in media:
        return _distinctive(media["example"])
    if media.get("examples"):
        return _distinctive(next(iter(media["examples"].values())).get("value"))
    schema = media.get("schema", {})
    schema = next((s for s in schema.get("anyOf", []) if "$ref" in s), schema)
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return _distinctive(schema["examples"][0]) if schema.get("examples") else None


def _examples(document: dict[str, Any]) -> dict[str, list[str]]:
    """Per operation, the strings of its request body's and its answer's examples."""
    out: dict[str, list[str]] = {}
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            found = [_example(document, op.get("requestBody", {}).get("content")),
                     _example(document, op["responses"].get("200", {}).get("content"))]
            out[f"{method.upper()} {path}"] = [s for s in found if s]
    return out


def test_swagger_ui_renders_every_operation_offline(served: ServerThread, browser: Browser) -> None:
    document = served.http.get("/openapi.json").json()
    browser.requests()  # only this page's requests from here on
    browser.get(served.rest_url + "/docs")
    browser.wait(lambda: len(browser.css(".opblock")) >= len(_operations(document)), what="Swagger UI's operations")

    def shown() -> dict[str, Any]:
        return {f"{b.find_element('css selector', '.opblock-summary-method').text} "
                f"{b.find_element('css selector', '.opblock-summary-path').text.replace(ZERO_WIDTH, '')}": b
                for b in browser.css(".opblock")}

    blocks = shown()
    assert set(blocks) == _operations(document)
    for wanted in ("POST /v1/predict", "POST /v1/predict/batch", "POST /v2/models/{model}/infer"):
        assert blocks[wanted].is_displayed(), wanted
    browser.shot("swagger-ui")
    # Each operation opened: its request body's and its answer's examples are on the page.
    expected = _examples(document)
    assert sum(map(len, expected.values())) >= 7  # the document has examples to show
    for name, block in blocks.items():
        block.find_element("css selector", ".opblock-summary").click()
        browser.wait(lambda block=block: block.find_elements("css selector", ".opblock-body"), what=f"{name} opened")
        for example in expected[name]:
            browser.wait(lambda block=block, example=example: example in block.text,
                         what=f"the example {example!r} of {name}")
    browser.driver.execute_script("window.scrollTo(0, 0)")
    browser.shot("swagger-ui-open")
    urls = browser.assert_only_loopback()
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in urls), urls
    assert any(u.endswith("/openapi.json") for u in urls), urls


def test_redoc_renders_every_operation_offline(served: ServerThread, browser: Browser) -> None:
    document = served.http.get("/openapi.json").json()
    browser.requests()
    browser.get(served.rest_url + "/redoc")
    browser.wait(lambda: "/v2/models/{model}/infer" in browser.text(), what="ReDoc's operations")
    text = browser.text()
    for path in document["paths"]:
        assert path in text, path
    # each operation under its summary; the left menu names the untagged ones and the tags
    menu = browser.text("[role=menu], .menu-content")
    for ops in document["paths"].values():
        for op in ops.values():
            assert op["summary"] in text, op["summary"]
            assert all(tag in menu for tag in op["tags"]) if op.get("tags") else op["summary"] in menu, op["summary"]
    # the payload samples of the prediction routes
    for example in ("What a wonderful film!", "Dull and far too long."):
        assert example in text, example
    browser.shot("redoc")
    urls = browser.assert_only_loopback()
    assert any(u.endswith("/docs/assets/redoc.standalone.js") for u in urls), urls
