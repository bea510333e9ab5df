"""Settings precedence (flag > environment > default), the exposure rule, and the CLI."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from server import cli
from server.settings import Settings
from tests.compare import assert_close


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BET_HOST", "BET_REST_PORT", "BET_GRPC_PORT", "BET_MODEL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert (s.host, s.rest_port, s.grpc_port, s.model) == ("127.0.0.1", 8000, 50051, None)


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BET_REST_PORT", "9000")
    monkeypatch.setenv("BET_GRPC_PORT", "9001")
    monkeypatch.setenv("BET_MODEL", "/models/x")
    s = Settings(grpc_port=9002)
    assert (s.rest_port, s.grpc_port, str(s.model)) == (9000, 9002, "/models/x")


def test_non_loopback_host_needs_insecure() -> None:
    with pytest.raises(ValidationError, match="insecure"):
        Settings(host="0.0.0.0")
    assert Settings(host="0.0.0.0", insecure=True).host == "0.0.0.0"
    assert Settings(host="::1").host == "::1" and Settings(host="localhost").host == "localhost"


def test_parser_has_the_contract_commands() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["serve", "--host", "127.0.0.1", "--rest-port", "1", "--grpc-port", "2", "--model", "m"])
    assert (args.rest_port, args.grpc_port, args.model, args.run) == (1, 2, "m", cli.run_serve)
    args = parser.parse_args(["predict", "some text", "--grpc", "127.0.0.1:1"])
    assert (args.text, args.grpc, args.run) == ("some text", "127.0.0.1:1", cli.run_predict)
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "t", "--url", "u", "--grpc", "g"])


def test_serve_refuses_exposed_host_without_starting(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    assert "insecure" in capsys.readouterr().err


def test_predict_against_real_servers(served, capsys: pytest.CaptureFixture) -> None:
    import json

    assert cli.main(["predict", "Lovely!", "--url", served.rest_url]) == 0
    rest = json.loads(capsys.readouterr().out)
    assert cli.main(["predict", "Lovely!", "--grpc", served.grpc_target]) == 0
    assert_close(json.loads(capsys.readouterr().out), rest)
    assert cli.main(["predict", "Lovely!", "--grpc", served.grpc_target, "--threshold", "1"]) == 1
    assert "prediction" in json.loads(capsys.readouterr().out)


def test_model_commands_are_registered() -> None:
    parser = cli.build_parser()
    for argv in (["train", "--data", "d.csv", "--out", "o"], ["eval", "--model", "m", "--data", "d.csv"],
                 ["data", "fetch"]):
        assert callable(parser.parse_args(argv).run)
