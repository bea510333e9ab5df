"""Peer: LitServe with its own dynamic batching, serving the same model. Runs in the bench's
own environment (bench/.venv-peers, see bench/README.md), never the project's .venv.

    bench/.venv-peers/bin/python bench/peers/litserve_app.py --port 8200"""
from __future__ import annotations

import argparse

import litserve as ls


class BetAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        from model.predictor import Predictor

        self.predictor = Predictor.load()

    def decode_request(self, request: dict) -> str:
        return request["text"]

    def predict(self, texts: list[str]) -> list:
        return self.predictor.predict(list(texts))

    def encode_response(self, p) -> dict:
        return {"prediction": p.label, "label_id": p.label_id, "confidence": p.confidence,
                "probabilities": p.probabilities,
                "uncertainty": {"total": p.uncertainty.total, "aleatoric": p.uncertainty.aleatoric,
                                "epistemic": p.uncertainty.epistemic}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--batch-timeout", type=float, default=0.005)
    args = ap.parse_args()
    api = BetAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout, api_path="/v1/predict")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=120,
                          healthcheck_path="/health/ready")
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, num_api_servers=1)


if __name__ == "__main__":
    main()
