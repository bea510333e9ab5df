"""Real servers on free loopback ports for tests: a BetServer on its own event loop in a
background thread, and the real predictor optionally held at a gate."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

import grpc
import httpx

from model.types import ModelInfo, Prediction
from server.app import BetServer
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from server.settings import Settings


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

    def info(self) -> ModelInfo:
        return self._predictor.info()


class ServerThread:
    """Starts on enter, drains and stops on exit."""

    def __init__(self, predictor: Any, *, warm: bool = True, **settings: Any) -> None:
        self.settings = Settings(rest_port=0, grpc_port=0, **settings)
        self.server = BetServer(self.settings, predictor)
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
