"""Triton's own client, unmodified, against bet: tritonclient.http and tritonclient.grpc with
their default settings. Runs in tests/oip/.venv-tritonclient (make oip-clients) and prints one
JSON object of what each call got; tests/oip/test_clients.py judges it.

    .venv-tritonclient/bin/python triton_check.py --rest 127.0.0.1:8000 --grpc 127.0.0.1:50051 \
        --texts-file texts.json
"""
from __future__ import annotations

import queue
from functools import partial
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from _report import Report, parse_args, tensor

UNKNOWN = "no-such-model"
STREAM_TIMEOUT_S = 30


def http_result(result: httpclient.InferResult) -> dict[str, Any]:
    response = result.get_response()  # the JSON header; binary outputs follow it in the body
    outputs = {}
    for o in response.get("outputs", []):
        params = o.get("parameters") or {}
        outputs[o["name"]] = tensor(result.as_numpy(o["name"]), o["datatype"], o["shape"],
                                    binary="binary_data_size" in params)
    return {"model_name": response.get("model_name"), "model_version": response.get("model_version"),
            "id": response.get("id"), "outputs": outputs}


def grpc_result(result: grpcclient.InferResult) -> dict[str, Any]:
    response = result.get_response()  # the ModelInferResponse message
    outputs = {o.name: tensor(result.as_numpy(o.name), o.datatype, o.shape) for o in response.outputs}
    return {"model_name": response.model_name, "model_version": response.model_version,
            "id": response.id, "raw_output_contents": len(response.raw_output_contents),
            "outputs": outputs}


def texts_input(module: Any, texts: list[str], shape: list[int] | None = None, **kw: Any) -> Any:
    array = np.array(texts, dtype=object)
    if shape is not None:
        array = array.reshape(shape)
    inp = module.InferInput("text", list(array.shape), "BYTES")
    inp.set_data_from_numpy(array, **kw)
    return inp


def refusal(fn: Any) -> dict[str, Any]:
    """A call that must raise InferenceServerException: what it raised, or what it returned."""
    try:
        value = fn()
    except InferenceServerException as exc:
        return {"refused": True, "type": type(exc).__name__, "message": exc.message(),
                "status": exc.status(), "str": str(exc)}
    return {"refused": False, "returned": repr(value)[:500]}


def check_http(report: Report, url: str, model: str, texts: list[str]) -> None:
    client = httpclient.InferenceServerClient(url=url, connection_timeout=30, network_timeout=60)
    r = partial(report.step)
    r("http.live", client.is_server_live)
    r("http.ready", client.is_server_ready)
    r("http.model_ready", lambda: client.is_model_ready(model))
    r("http.server_metadata", client.get_server_metadata)
    meta = r("http.model_metadata", lambda: client.get_model_metadata(model))
    version = meta.get("versions", [""])[0] if isinstance(meta, dict) and meta.get("versions") else ""
    r("http.model_ready_version", lambda: client.is_model_ready(model, model_version=version))
    r("http.model_ready_other_version", lambda: client.is_model_ready(model, model_version="no-such-version"))
    r("http.unknown_model_ready", lambda: client.is_model_ready(UNKNOWN))

    def infer(**kw: Any) -> Any:
        return http_result(client.infer(model, **kw))

    # The default: binary input tensor, no outputs named, so binary_data_output for all.
    r("http.infer.binary", lambda: infer(inputs=[texts_input(httpclient, texts)], request_id="http-binary"))
    # The input as JSON; outputs still binary (the client asks for binary_data_output).
    r("http.infer.json_input", lambda: infer(inputs=[texts_input(httpclient, texts, binary_data=False)]))
    # Everything JSON: each output asked for with binary_data=False.
    all_json = lambda: [httpclient.InferRequestedOutput(n, binary_data=False) for n in ALL_OUTPUTS]  # noqa: E731
    r("http.infer.json", lambda: infer(inputs=[texts_input(httpclient, texts, binary_data=False)],
                                       outputs=all_json()))
    # A subset (the filter), binary_data=True outputs explicitly.
    r("http.infer.subset_binary", lambda: infer(
        inputs=[texts_input(httpclient, texts)],
        outputs=[httpclient.InferRequestedOutput(n, binary_data=True) for n in SUBSET]))
    # A subset, one JSON and one binary in the same answer.
    r("http.infer.subset_mixed", lambda: infer(
        inputs=[texts_input(httpclient, texts)],
        outputs=[httpclient.InferRequestedOutput("label", binary_data=False),
                 httpclient.InferRequestedOutput("probabilities", binary_data=True)]))
    r("http.infer.shape_n1", lambda: infer(inputs=[texts_input(httpclient, texts, shape=[len(texts), 1])]))
    r("http.infer.version", lambda: infer(inputs=[texts_input(httpclient, texts)], model_version=version))
    r("http.infer.threshold", lambda: infer(inputs=[texts_input(httpclient, texts)],
                                            parameters={"confidence_threshold": THRESHOLD}))
    r("http.infer.cot", lambda: infer(inputs=[texts_input(httpclient, texts)], parameters={"return_cot": True}))
    r("http.infer.no_uncertainty", lambda: infer(inputs=[texts_input(httpclient, texts)],
                                                 parameters={"return_uncertainty": False}))

    r("http.unknown_model.infer", lambda: refusal(lambda: client.infer(UNKNOWN, [texts_input(httpclient, texts)])))
    r("http.unknown_model.metadata", lambda: refusal(lambda: client.get_model_metadata(UNKNOWN)))
    r("http.other_version.infer", lambda: refusal(
        lambda: client.infer(model, [texts_input(httpclient, texts)], model_version="no-such-version")))
    client.close()


def check_grpc(report: Report, url: str, model: str, texts: list[str]) -> None:
    client = grpcclient.InferenceServerClient(url=url)
    r = partial(report.step)
    r("grpc.live", client.is_server_live)
    r("grpc.ready", client.is_server_ready)
    r("grpc.model_ready", lambda: client.is_model_ready(model))
    r("grpc.server_metadata", lambda: client.get_server_metadata(as_json=True))
    meta = r("grpc.model_metadata", lambda: client.get_model_metadata(model, as_json=True))
    version = meta.get("versions", [""])[0] if isinstance(meta, dict) and meta.get("versions") else ""
    r("grpc.model_ready_version", lambda: client.is_model_ready(model, model_version=version))
    r("grpc.model_ready_other_version", lambda: refusal(
        lambda: client.is_model_ready(model, model_version="no-such-version")))
    r("grpc.unknown_model_ready", lambda: refusal(lambda: client.is_model_ready(UNKNOWN)))

    def infer(**kw: Any) -> Any:
        return grpc_result(client.infer(model, **kw))

    # tritonclient.grpc always sends raw_input_contents.
    r("grpc.infer.binary", lambda: infer(inputs=[texts_input(grpcclient, texts)], request_id="grpc-binary"))
    r("grpc.infer.subset", lambda: infer(inputs=[texts_input(grpcclient, texts)],
                                         outputs=[grpcclient.InferRequestedOutput(n) for n in SUBSET]))
    r("grpc.infer.shape_n1", lambda: infer(inputs=[texts_input(grpcclient, texts, shape=[len(texts), 1])]))
    r("grpc.infer.version", lambda: infer(inputs=[texts_input(grpcclient, texts)], model_version=version))
    # tritonclient sends a Python float as double_param.
    r("grpc.infer.threshold", lambda: infer(inputs=[texts_input(grpcclient, texts)],
                                            parameters={"confidence_threshold": THRESHOLD}))
    r("grpc.infer.cot", lambda: infer(inputs=[texts_input(grpcclient, texts)], parameters={"return_cot": True}))
    r("grpc.infer.no_uncertainty", lambda: infer(inputs=[texts_input(grpcclient, texts)],
                                                 parameters={"return_uncertainty": False}))
    r("grpc.stream", lambda: stream(client, model, texts))

    r("grpc.unknown_model.infer", lambda: refusal(lambda: client.infer(UNKNOWN, [texts_input(grpcclient, texts)])))
    r("grpc.unknown_model.metadata", lambda: refusal(lambda: client.get_model_metadata(UNKNOWN)))
    r("grpc.other_version.infer", lambda: refusal(
        lambda: client.infer(model, [texts_input(grpcclient, texts)], model_version="no-such-version")))
    client.close()


def stream(client: grpcclient.InferenceServerClient, model: str, texts: list[str]) -> list[Any]:
    """ModelStreamInfer: one request per text, then one for an unknown model; each answer (or
    error) as it came, in order."""
    answers: queue.Queue[Any] = queue.Queue()
    # tritonclient calls back with keywords: callback(result=..., error=...)
    client.start_stream(callback=lambda result, error: answers.put((result, error)),
                        stream_timeout=STREAM_TIMEOUT_S)
    try:
        for i, t in enumerate(texts):
            client.async_stream_infer(model, [texts_input(grpcclient, [t])], request_id=f"stream-{i}")
        client.async_stream_infer(UNKNOWN, [texts_input(grpcclient, texts[:1])], request_id="stream-unknown")
        got = []
        for _ in range(len(texts) + 1):
            result, err = answers.get(timeout=STREAM_TIMEOUT_S)
            got.append({"error": {"type": type(err).__name__, "message": err.message(), "status": err.status()}}
                       if err is not None else grpc_result(result))
        return got
    finally:
        client.stop_stream(cancel_requests=True)


ALL_OUTPUTS = ["label", "label_id", "confidence", "probabilities", "uncertainty_total",
               "uncertainty_aleatoric", "uncertainty_epistemic", "accepted"]
SUBSET = ["label", "confidence", "uncertainty_epistemic"]
THRESHOLD = 0.9


def main() -> None:
    args = parse_args(__doc__)
    report = Report()
    report.data["texts"] = args.texts
    report.data["threshold"] = THRESHOLD
    report.data["subset"] = SUBSET
    check_http(report, args.rest, args.model, args.texts)
    check_grpc(report, args.grpc, args.model, args.texts)
    report.print()


if __name__ == "__main__":
    main()
