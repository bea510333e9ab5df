"""Settings precedence (flag > environment > default), the exposure rule, and the CLI."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from server import cli, settings
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


def test_workers_default_two_and_one_with_a_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BET_WORKERS", raising=False)
    assert Settings().workers == 2
    assert Settings(rate_limit_per_second=5).workers == 1  # buckets are per process
    assert Settings(rate_limit_per_second=5, workers=3).workers == 3
    monkeypatch.setenv("BET_WORKERS", "1")
    assert Settings().workers == 1
    with pytest.raises(ValidationError):
        Settings(workers=0)


def test_torch_threads_default_shares_the_cores_among_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BET_WORKERS", raising=False)
    monkeypatch.delenv("BET_TORCH_THREADS", raising=False)
    monkeypatch.setattr(settings, "usable_cores", lambda: 2)
    assert Settings().torch_threads == 1  # two workers, one core each
    assert Settings(rate_limit_per_second=5).torch_threads == 2  # one worker takes both
    assert Settings(workers=3).torch_threads == 1
    monkeypatch.setattr(settings, "usable_cores", lambda: 16)
    assert Settings().torch_threads == 8
    assert Settings(torch_threads=0).torch_threads == 0  # torch's own default


def test_a_container_cpu_quota_is_read_from_either_cgroup_version(tmp_path) -> None:
    assert settings.cgroup_cpu_quota(tmp_path) is None  # no cgroup files: no limit
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert settings.cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a Kubernetes limit of 1.5 CPUs
    assert settings.cgroup_cpu_quota(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert settings.cgroup_cpu_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert settings.cgroup_cpu_quota(v1) == 2.0


def test_non_loopback_host_needs_insecure() -> None:
    with pytest.raises(ValidationError, match="insecure"):
        Settings(host="0.0.0.0")
    assert Settings(host="0.0.0.0", insecure=True).host == "0.0.0.0"
    assert Settings(host="::1").host == "::1" and Settings(host="localhost").host == "localhost"


def test_authentication_allows_a_non_loopback_host(tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("")
    assert Settings(host="0.0.0.0", auth_api_keys_file=keys).auth_enabled
    assert Settings(host="0.0.0.0", auth_jwt_secret="s" * 32).host == "0.0.0.0"
    assert not Settings().auth_enabled


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"auth_jwt_secret": "short"}, "at least 32"),
    ({"auth_jwt_issuer": "https://issuer"}, "needs a JWT secret"),
    ({"tls_cert_file": __file__}, "both a certificate"),
    ({"tls_cert_file": "/nonexistent.pem", "tls_key_file": __file__}, "not point to a file"),
    ({"rate_limit_burst": 5}, "needs a rate"),
    ({"rate_limit_per_second": 0}, "greater than 0"),
])
def test_security_settings_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**kwargs)


def test_rate_limit_burst_defaults_to_one_second() -> None:
    assert Settings(rate_limit_per_second=2.5).rate_limit_burst == 3
    assert Settings(rate_limit_per_second=0.1).rate_limit_burst == 1


def test_security_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    args = cli.build_parser().parse_args([
        "serve", "--auth-jwt-secret", "s" * 32, "--auth-jwt-issuer", "iss", "--rate-limit-per-second", "2.5",
        "--rate-limit-burst", "4", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"])
    assert (args.auth_jwt_secret, args.rate_limit_per_second, args.rate_limit_burst) == ("s" * 32, 2.5, 4)
    assert cli.main(["serve", "--auth-api-keys-file", "/nonexistent/keys"]) == 2  # before loading a model
    assert "auth_api_keys_file" in capsys.readouterr().err


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
    below = json.loads(capsys.readouterr().out)
    assert below["code"] == "FAILED_PRECONDITION" and "threshold" in below["detail"]
    assert_close(below["prediction"], rest)
    assert cli.main(["predict", "Lovely!", "--url", served.rest_url, "--threshold", "1"]) == 1
    below = json.loads(capsys.readouterr().out)
    assert below["status"] == 422 and "threshold" in below["detail"]
    assert_close(below["prediction"], rest)
    assert cli.main(["predict", "Lovely!", "--url", "http://127.0.0.1:1"]) == 1  # nobody there
    assert "cannot reach" in json.loads(capsys.readouterr().out)["detail"]


def test_model_commands_are_registered() -> None:
    parser = cli.build_parser()
    for argv in (["train", "--data", "d.csv", "--out", "o"], ["eval", "--model", "m", "--data", "d.csv"],
                 ["data", "fetch"]):
        assert callable(parser.parse_args(argv).run)


def test_serve_sets_the_gil_switch_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """The serving process hands the GIL over within the configured interval (torch ops give
    it up and take it back; Python's 5 ms default starved the forward pass under load)."""
    import sys

    from server import app

    seen = []

    async def fake_serve(settings, predictor, **_: object) -> int:
        seen.append(sys.getswitchinterval())
        return 0

    monkeypatch.setattr(app, "load_predictor", lambda settings, state=None: object())
    monkeypatch.setattr(app, "serve", fake_serve)
    monkeypatch.setenv("BET_GIL_SWITCH_INTERVAL_MS", "2.5")
    before = sys.getswitchinterval()
    try:
        assert cli.main(["serve", "--workers", "1"]) == 0
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(0.0025)]
    with pytest.raises(ValidationError):
        Settings(gil_switch_interval_ms=0)
