"""KServe's Python SDK, unmodified, against bet: kserve.InferenceRESTClient (protocol v2) and
kserve.InferenceGRPCClient, both asynchronous. Runs in tests/oip/.venv-kserve (make
oip-clients) and prints one JSON object of what each call got; tests/oip/test_clients.py
judges it.

    .venv-kserve/bin/python kserve_check.py --rest 127.0.0.1:8000 --grpc 127.0.0.1:50051 \
        --texts-file texts.json

What kserve 0.21.0 does on the wire (read from its source): InferInput.set_data_from_numpy
defaults to binary_data=True, which the REST client sends as the binary tensor extension
(inference-header-content-length) and the gRPC client as raw_input_contents; InferInput(...,
data=[...]) is JSON `data` / contents.bytes_contents; InferInput(..., data=<ndarray>) is JSON
on REST and raw_input_contents on gRPC. Its gRPC client turns only str, bool and int request
parameters into InferParameter (a float raises InvalidInput), and its InferParameter has no
double_param at all (its grpc_predict_v2.proto has bool, int64 and string only).
Its REST client reads a v2 answer with InferResponse.from_bytes, which keeps no model_version.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import sys

import numpy as np

from _report import Report, error, parse_args, plain, tensor

# kserve parses sys.argv when imported (kserve.model_server's flags, abbreviations allowed, so
# --grpc is "ambiguous"): read ours first and hide them from it.
ARGS = parse_args(__doc__) if __name__ == "__main__" else None
del sys.argv[1:]

from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig  # noqa: E402

UNKNOWN = "no-such-model"
THRESHOLD = 0.9


def result(response: Any) -> dict[str, Any]:
    outputs = {o.name: tensor(o.as_numpy(), o.datatype, o.shape) for o in response.outputs}
    return {"model_name": response.model_name, "model_version": response.model_version,
            "id": response.id, "parameters": plain(dict(response.parameters or {})),
            "outputs": outputs}


def numpy_input(texts: list[str], **kw: Any) -> InferInput:
    inp = InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array(texts, dtype=object), **kw)
    return inp


def list_input(texts: list[str]) -> InferInput:
    return InferInput("text", [len(texts)], "BYTES", data=list(texts))


def ndarray_input(texts: list[str]) -> InferInput:
    return InferInput("text", [len(texts)], "BYTES", data=np.array(texts, dtype=object))


def request(model: str, inp: InferInput, request_id: str | None = None, **kw: Any) -> InferRequest:
    return InferRequest(model_name=model, infer_inputs=[inp], request_id=request_id, **kw)


async def step(report: Report, path: str, coro_fn: Any) -> Any:
    """Report.step for a coroutine."""
    try:
        value = await coro_fn()
    except Exception as exc:  # noqa: BLE001 - the report is what the test reads
        value = {"error": error(exc)}
    report.step(path, lambda: value)
    return value


async def refusal(coro_fn: Any) -> dict[str, Any]:
    try:
        value = await coro_fn()
    except Exception as exc:  # noqa: BLE001
        return {"refused": True, **error(exc)}
    return {"refused": False, "returned": repr(value)[:500]}


async def check_rest(report: Report, host: str, model: str, texts: list[str]) -> None:
    base = f"http://{host}"
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=1, timeout=60))
    try:
        s = lambda path, fn: step(report, f"rest.{path}", fn)  # noqa: E731
        await s("live", lambda: client.is_server_live(base))
        await s("ready", lambda: client.is_server_ready(base))
        await s("model_ready", lambda: client.is_model_ready(base, model))
        # v2 in kserve: any non-2xx answer is "not ready", so an unknown model reads False.
        await s("unknown_model_ready", lambda: client.is_model_ready(base, UNKNOWN))

        async def infer(inp: InferInput, **kw: Any) -> Any:
            return result(await client.infer(base, request(model, inp, **kw), model_name=model))

        await s("infer.numpy", lambda: infer(numpy_input(texts), request_id="kserve-rest-numpy"))
        await s("infer.numpy_json", lambda: infer(numpy_input(texts, binary_data=False)))
        await s("infer.list", lambda: infer(list_input(texts)))
        await s("infer.ndarray", lambda: infer(ndarray_input(texts)))
        await s("infer.threshold", lambda: infer(list_input(texts), parameters={"confidence_threshold": THRESHOLD}))
        await s("infer.cot", lambda: infer(list_input(texts), parameters={"return_cot": True}))
        await s("infer.no_uncertainty", lambda: infer(list_input(texts), parameters={"return_uncertainty": False}))
        await s("unknown_model.infer", lambda: refusal(
            lambda: client.infer(base, request(UNKNOWN, list_input(texts)), model_name=UNKNOWN)))
    finally:
        await client.close()


async def check_grpc(report: Report, target: str, model: str, texts: list[str]) -> None:
    client = InferenceGRPCClient(url=target, timeout=60)  # its default retries (3, on UNAVAILABLE)
    try:
        s = lambda path, fn: step(report, f"grpc.{path}", fn)  # noqa: E731
        await s("live", client.is_server_live)
        await s("ready", client.is_server_ready)
        await s("model_ready", lambda: client.is_model_ready(model))
        await s("unknown_model_ready", lambda: refusal(lambda: client.is_model_ready(UNKNOWN)))

        async def infer(inp: InferInput, **kw: Any) -> Any:
            return result(await client.infer(request(model, inp, **kw)))

        await s("infer.numpy", lambda: infer(numpy_input(texts), request_id="kserve-grpc-numpy"))  # raw_input_contents
        await s("infer.list", lambda: infer(list_input(texts)))  # contents.bytes_contents
        await s("infer.ndarray", lambda: infer(ndarray_input(texts)))  # raw_input_contents
        # confidence_threshold as the parameter kinds the SDK can send: string and int64 (a
        # float raises in the client, which has no double_param).
        await s("infer.threshold_string", lambda: infer(
            list_input(texts), parameters={"confidence_threshold": str(THRESHOLD)}))
        await s("infer.threshold_int", lambda: infer(list_input(texts), parameters={"confidence_threshold": 1}))
        await s("infer.threshold_float_refused_by_client", lambda: refusal(lambda: infer(
            list_input(texts), parameters={"confidence_threshold": THRESHOLD})))
        await s("infer.cot", lambda: infer(list_input(texts), parameters={"return_cot": True}))
        await s("infer.no_uncertainty", lambda: infer(list_input(texts), parameters={"return_uncertainty": False}))
        await s("unknown_model.infer", lambda: refusal(lambda: client.infer(request(UNKNOWN, list_input(texts)))))
    finally:
        await client.close()


async def amain() -> None:
    args = ARGS
    assert args is not None
    report = Report()
    report.data.update(texts=args.texts, threshold=THRESHOLD)
    await check_rest(report, args.rest, args.model, args.texts)
    await check_grpc(report, args.grpc, args.model, args.texts)
    report.print()


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)  # kserve logs each refused call with a traceback
    asyncio.run(amain())
