"""The `bet` command. Each subcommand is one `add_*` function that declares its flags and
sets `run`, a function of the parsed arguments returning the exit code. To add one (train,
eval, data fetch), write its add_* function and list it in COMMANDS; keep the work in the
package it belongs to (model.train, model.evaluate, model.data) and import it inside `run`,
so that `bet --help` stays fast."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from model import cli as model_cli

Subparsers = Any  # argparse's private _SubParsersAction


def add_serve(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the model over REST and gRPC from one process")
    p.add_argument("--host", help="address to bind (env BET_HOST, default 127.0.0.1)")
    p.add_argument("--rest-port", type=int, help="REST port (env BET_REST_PORT, default 8000; 0 = any free)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (env BET_GRPC_PORT, default 50051; 0 = any free)")
    p.add_argument("--model", help="checkpoint directory (env BET_MODEL; default: the embedded model)")
    p.add_argument("--model-store", help="directory of versions, each subfolder a checkpoint named by "
                   "its version; serves the newest (env BET_MODEL_STORE)")
    p.add_argument("--model-version", help="serve this version of the model store, not the newest "
                   "(env BET_MODEL_VERSION)")
    p.add_argument("--workers", type=int, help="serving processes sharing both ports, each with its own "
                   "model (env BET_WORKERS; default 2, or 1 with a rate limit)")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="allow a non-loopback host without authentication")
    security = p.add_argument_group("security (README: Security); each also as BET_<NAME>")
    for flag, what in SECURITY_FLAGS.items():
        security.add_argument(flag, type=int if "burst" in flag else float if "rate" in flag else None,
                              help=what)
    p.set_defaults(run=run_serve)


SECURITY_FLAGS = {
    "--auth-jwt-secret": "HS256 shared secret (at least 32 characters); turns authentication on",
    "--auth-jwt-public-key-file": "PEM public key, RSA (RS256) or EC P-256 (ES256); turns authentication on",
    "--auth-jwt-issuer": "required `iss` of tokens",
    "--auth-jwt-audience": "required `aud` of tokens",
    "--auth-api-keys-file": "API keys file (JSON lines: id, sha256, scopes); re-read when it changes",
    "--rate-limit-per-second": "requests per second per caller, both protocols together",
    "--rate-limit-burst": "requests a caller may make at once (default: one second's worth)",
    "--tls-cert-file": "PEM certificate chain: both servers speak TLS",
    "--tls-key-file": "PEM private key of that certificate",
}


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.settings import Settings

    flags = {k: v for k in ("host", "rest_port", "grpc_port", "model", "model_store", "model_version", "insecure",
                              "workers",
                              *(f.removeprefix("--").replace("-", "_") for f in SECURITY_FLAGS))
             if (v := getattr(args, k)) is not None}
    try:
        settings = Settings(**flags)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        print(f"bet serve: {where + ': ' if where else ''}{error['msg']}", file=sys.stderr)
        return 2
    if (settings.workers or 1) > 1:
        from server.logs import configure_logging
        from server.supervisor import supervise  # before server.app: it sets up shared metrics

        configure_logging(settings.log_level)
        return supervise(settings)
    from server import app

    return app.run(settings)


def add_predict(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("predict", help="send one text to a running server, print the JSON answer")
    p.add_argument("text")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="REST base URL (default http://127.0.0.1:8000)")
    where.add_argument("--grpc", metavar="ADDR", help="gRPC address, e.g. 127.0.0.1:50051")
    p.add_argument("--no-uncertainty", action="store_true", help="leave out the uncertainty")
    p.add_argument("--cot", action="store_true", help="include cot_length and reasoning")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="confidence threshold (default 0.0 here: always print the answer)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    p.add_argument("--token", default=os.environ.get("BET_TOKEN"),
                   help="bearer JWT to send (env BET_TOKEN, which keeps it out of the process list)")
    p.add_argument("--api-key", default=os.environ.get("BET_API_KEY"), help="API key to send (env BET_API_KEY)")
    p.add_argument("--ca-file", help="PEM of the CA to trust: TLS for --grpc; for an https --url "
                   "signed by a private CA")
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """One request through the client library (clients/python, installed beside bet by `make
    install`; not a dependency of the server's package, so imported here). No retries: one
    request, one answer or error body."""
    try:
        from bet_client import NO_RETRY, BetError, Client, LowConfidenceError
    except ImportError:
        print("bet predict needs the client library: pip install ./clients/python", file=sys.stderr)
        return 2

    rest = not args.grpc
    address = (args.url or "http://127.0.0.1:8000") if rest else args.grpc
    answer: Any
    try:
        with Client(address, "rest" if rest else "grpc", timeout=args.timeout, retry=NO_RETRY, token=args.token,
                    api_key=args.api_key, ca_file=args.ca_file) as client:
            answer = client.predict(args.text, return_uncertainty=not args.no_uncertainty, return_cot=args.cot,
                                    confidence_threshold=args.threshold).model_dump(mode="json", exclude_none=True)
        code = 0
    except BetError as error:  # the error body: status (REST) or code (gRPC), detail, and the answer if any
        where = {"status": error.http_status} if error.http_status is not None else (
            {"code": error.code.name} if error.code is not None else {})
        answer = {**where, "detail": error.detail}
        if isinstance(error, LowConfidenceError):
            answer["prediction"] = error.prediction.model_dump(mode="json", exclude_none=True)
        code = 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return code


# The subcommands, in help order; the model's own (data fetch, train, eval) live in model/cli.py.
COMMANDS: list[Callable[[Subparsers], None]] = [
    add_serve, add_predict, model_cli.add_data, model_cli.add_train, model_cli.add_eval,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bet", description="Bayesian Expectation Transformer")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
