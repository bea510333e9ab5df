"""Real servers on free loopback ports for tests: a BetServer on its own event loop in a
background thread, the real predictor optionally held at a gate, and `bet serve` as a
process (started and stopped); and the Open Inference Protocol's gRPC request for texts and
its answer's tensors."""
from __future__ import annotations

import asyncio
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

from model.types import ModelInfo, Prediction
from server.app import BetServer
from server.core import oip
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from server.grpc.gen.inference import open_inference_grpc_pb2 as oip_pb
from server.settings import Settings

BET = str(Path(sys.executable).with_name("bet"))


class Gated:
    """The real predictor, whose forward pass waits while the gate is closed, and which
    records every text it computed."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor
        self.version = predictor.version
        self.labels = predictor.labels
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a forward pass starts
        self.computed: list[str] = []

    def predict(self, texts: Sequence[str], *, with_reasoning: bool = False) -> list[Prediction]:
        self.entered.set()
        assert self.gate.wait(30), "gate never opened"
        self.computed.extend(texts)
        return self._predictor.predict(texts, with_reasoning=with_reasoning)

    def windows(self, texts: Sequence[str]) -> list[int]:
        return self._predictor.windows(texts)

    def info(self) -> ModelInfo:
        return self._predictor.info()


class ServerThread:
    """Starts on enter, drains and stops on exit."""

    def __init__(
        self, predictor: Any, *, warm: bool = True, tracing: Any = None, loader: Any = None, **settings: Any
    ) -> None:
        # Tests of answers run with the queue's limit only: the admission budget refuses by
        # measured throughput, which a shared test machine makes a matter of chance; its own
        # tests (tests/integration/test_fast_no.py, tests/unit/test_batching.py) set it.
        settings.setdefault("admission_budget_ms", 0)
        self.settings = Settings(rest_port=0, grpc_port=0, **settings)
        self.server = BetServer(self.settings, predictor, tracing=tracing, loader=loader)
        self._warm = warm
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        self.run(self.server.start())
        if self._warm:
            self.run(self.server.warm_up())
        self.rest_url = self.server.rest_url
        self.grpc_target = self.server.grpc_target
        self.http = httpx.Client(base_url=self.rest_url, timeout=60)
        self.channel = grpc.insecure_channel(self.grpc_target)
        self.stub = pb_grpc.InferenceStub(self.channel)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.close()
        self.channel.close()
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def start_bet_serve(
    extra_env: dict[str, str], args: Sequence[str] = ()
) -> tuple[subprocess.Popen, str, str]:
    """`bet serve` on free ports; returns the process, its REST URL and gRPC target once it
    has printed both (it prints them when it accepts connections)."""
    # one process unless the test asks for more (tests/integration/test_workers.py does); no
    # admission budget unless asked (as ServerThread)
    env = {**os.environ, "BET_WORKERS": "1", "BET_ADMISSION_BUDGET_MS": "0", **extra_env}
    proc = subprocess.Popen([BET, "serve", "--rest-port", "0", "--grpc-port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    rest = target = ""
    deadline = time.monotonic() + 120
    while not (rest and target):
        assert time.monotonic() < deadline, "bet serve printed no addresses"
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert proc.poll() is None, f"bet serve exited with {proc.returncode} before serving"
            continue
        if m := re.search(r"REST\s+(\S+)", line):
            rest = m.group(1)
        if m := re.search(r"gRPC\s+(\S+)", line):
            target = m.group(1)
    return proc, rest, target


def stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM (the server drains), then SIGKILL if it has not exited in `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def oip_grpc_request(texts: list[str], *, raw: bool) -> oip_pb.ModelInferRequest:
    """An OIP ModelInfer request for model "bet" with one BYTES tensor "text" holding the
    texts, in raw_input_contents when `raw`, else in the tensor's contents."""
    request = oip_pb.ModelInferRequest(model_name="bet")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    encoded = [t.encode() for t in texts]
    if raw:
        request.raw_input_contents.append(oip.encode_bytes(encoded))
    else:
        tensor.contents.bytes_contents.extend(encoded)
    return request


def oip_tensors_from_grpc(answer: oip_pb.ModelInferResponse) -> dict[str, tuple[str, list[int], list[Any]]]:
    """name -> (datatype, shape, flat values), from contents or raw_output_contents."""
    numpy = {"FP64": "<f8", "INT32": "<i4", "BOOL": "?"}
    field = {"BYTES": "bytes_contents", "FP64": "fp64_contents", "INT32": "int_contents", "BOOL": "bool_contents"}
    out = {}
    for i, tensor in enumerate(answer.outputs):
        if answer.raw_output_contents:
            raw = answer.raw_output_contents[i]
            values = ([v.decode() for v in oip.decode_bytes(raw)] if tensor.datatype == "BYTES"
                      else np.frombuffer(raw, numpy[tensor.datatype]).tolist())
        else:
            values = [v.decode() if isinstance(v, bytes) else v
                      for v in getattr(tensor.contents, field[tensor.datatype])]
        out[tensor.name] = (tensor.datatype, list(tensor.shape), values)
    return out
