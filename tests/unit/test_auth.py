"""The core's verifier, key file, rate limiter and Guard, without servers."""
from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
import pytest
from prometheus_client import CollectorRegistry

from server.core import auth
from server.core.auth import ADMIN, PREDICT, ApiKeys, Authenticator, Credentials, Guard, JwtVerifier
from server.core.ratelimit import RateLimiter
from server.errors import PermissionDenied, RateLimited, Unauthenticated
from tests import security as sec


def verifier(**kwargs) -> JwtVerifier:
    options = dict(secret=sec.SECRET, public_key_file=None, issuer=sec.ISSUER,
                   audience=sec.AUDIENCE, leeway_s=5.0)
    return JwtVerifier(**(options | kwargs))


def refused(check, *args) -> str:
    with pytest.raises(Unauthenticated) as caught:
        check(*args)
    return caught.value.detail


def test_a_valid_token_names_its_subject_and_scopes() -> None:
    principal = verifier().verify(sec.hs256(scope="predict admin unknown"))
    assert principal == auth.Principal("jwt:alice", frozenset({PREDICT, ADMIN}))
    assert verifier().verify(sec.hs256(scope=None, scopes=["admin"])).scopes == {ADMIN}


@pytest.mark.parametrize(("token", "reason"), [
    (lambda: sec.hs256(exp=int(time.time()) - 60), "expired"),
    (lambda: sec.hs256(nbf=int(time.time()) + 60), "not valid yet"),
    (lambda: sec.hs256(iss="https://someone.else"), "issuer"),
    (lambda: sec.hs256(aud="another-service"), "audience"),
    (lambda: jwt.encode(sec.claims(), "x" * 40, algorithm="HS256"), "signature"),
    (lambda: sec.unsigned(), "algorithm"),
    (lambda: jwt.encode(sec.claims(), sec.SECRET * 2, algorithm="HS512"), "algorithm"),
    (lambda: sec.hs256(exp=None), "'exp'"),
    (lambda: sec.hs256(sub=None), "'sub'"),
    (lambda: sec.hs256(sub="x" * 300), "subject"),
    (lambda: "not.a.jwt", "not a JWT"),
])
def test_bad_tokens_are_refused_with_a_reason(token, reason: str) -> None:
    assert reason in refused(verifier().verify, token())


def test_leeway_is_small_and_bounded() -> None:
    assert verifier().verify(sec.hs256(exp=int(time.time()) - 2))  # within 5 s of skew
    assert "expired" in refused(verifier().verify, sec.hs256(exp=int(time.time()) - 10))


@pytest.mark.parametrize(("make", "algorithm"), [(sec.rsa_key, "RS256"), (sec.ec_key, "ES256")])
def test_public_key_algorithms_are_pinned(tmp_path: Path, make, algorithm: str) -> None:
    key = make()
    (tmp_path / "pub.pem").write_bytes(sec.pem_public(key))
    v = verifier(secret=None, public_key_file=tmp_path / "pub.pem")
    assert v.algorithms == [algorithm]
    assert v.verify(jwt.encode(sec.claims(), sec.pem_private(key), algorithm=algorithm)).id == "jwt:alice"
    # the public key used as an HMAC secret (the classic confusion) is refused
    forged = jwt.encode(sec.claims(), sec.SECRET, algorithm="HS256")
    assert "algorithm" in refused(v.verify, forged)
    assert "signature" in refused(v.verify, jwt.encode(sec.claims(), sec.pem_private(make()), algorithm=algorithm))


def test_api_keys_file_is_hashed_and_reread_on_change(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    sec.write_keys(path, {"ci": ("key-one", ["predict"]), "ops": ("key-two", ["predict", "admin"])})
    assert "key-one" not in path.read_text()
    keys = ApiKeys(path)
    assert keys.lookup("key-one") == auth.Principal("key:ci", frozenset({PREDICT}))
    assert keys.lookup("key-two").scopes == {PREDICT, ADMIN}
    sec.write_keys(path, {"ops": ("key-two", ["admin"])})  # revoke ci, narrow ops
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert "not valid" in refused(keys.lookup, "key-one")
    assert keys.lookup("key-two").scopes == {ADMIN}
    path.write_text("{broken\n")  # a broken edit refuses every key, it does not keep old ones
    assert "not valid" in refused(keys.lookup, "key-two")


@pytest.mark.parametrize("line", ['{"id": "x"}', '{"id": "x", "sha256": "zz"}',
                                  '{"id": "", "sha256": "' + "a" * 64 + '"}',
                                  '{"id": "x", "sha256": "' + "a" * 64 + '", "scopes": ["root"]}', "[]"])
def test_bad_key_lines_name_their_line(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        auth.parse_api_keys("# comment\n" + line)


def test_authenticator_reads_either_credential(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    sec.write_keys(path, {"ci": ("k", ["predict"])})
    a = Authenticator(verifier(), ApiKeys(path))
    assert a.authenticate(Credentials(authorization="Bearer " + sec.hs256())).id == "jwt:alice"
    assert a.authenticate(Credentials(api_key="k")).id == "key:ci"
    assert "credentials required" in refused(a.authenticate, Credentials())
    assert "Bearer" in refused(a.authenticate, Credentials(authorization="Basic abc"))
    assert "too long" in refused(a.authenticate, Credentials(api_key="k" * 10_000))
    off = Authenticator()
    assert not off.enabled
    assert off.authenticate(Credentials(client="10.0.0.1")) == auth.Principal("addr:10.0.0.1", auth.SCOPES)


def test_rate_limiter_refills_per_caller() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0  # another caller has its own bucket
    now[0] = 0.5
    assert limiter.take("a") == 0 and limiter.take("a") == pytest.approx(0.5)


def test_rate_limiter_forgets_full_buckets() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, 1, clock=lambda: now[0], max_callers=10)
    for i in range(10):
        limiter.take(f"c{i}")
    now[0] = 5.0
    limiter.take("new")
    assert len(limiter._buckets) == 1


def test_guard_checks_credentials_then_scope_then_charges(tmp_path: Path) -> None:
    guard = Guard(Authenticator(verifier()), RateLimiter(1.0, 1), CollectorRegistry())
    good = Credentials(authorization="Bearer " + sec.hs256())
    with pytest.raises(Unauthenticated):
        guard.admit(Credentials(authorization="Bearer " + sec.hs256(exp=1)), PREDICT)
    with pytest.raises(PermissionDenied):
        guard.admit(good, ADMIN)
    assert guard.admit(good, PREDICT).id == "jwt:alice"  # neither refusal spent the token
    with pytest.raises(RateLimited) as caught:
        guard.admit(good, PREDICT)
    assert caught.value.retry_after_s == 1


def test_require_scope_reads_the_admitted_caller() -> None:
    import contextvars

    guard = Guard(Authenticator(verifier()), None, CollectorRegistry())

    def call(scope: str) -> auth.Principal:
        guard.admit(Credentials(authorization="Bearer " + sec.hs256(scope="predict")), PREDICT)
        return auth.require_scope(scope)()

    assert contextvars.Context().run(call, PREDICT).id == "jwt:alice"
    with pytest.raises(PermissionDenied):
        contextvars.Context().run(call, ADMIN)
    with pytest.raises(Unauthenticated):  # no door admitted anyone: closed
        contextvars.Context().run(auth.require_scope(PREDICT))


def test_scope_tables_close_what_they_do_not_name() -> None:
    assert auth.rest_scope("/health/ready") is None and auth.rest_scope("/metrics") is None
    assert auth.rest_scope("/metrics", metrics_open=False) == ADMIN
    assert auth.rest_scope("/v1/predict") == PREDICT and auth.rest_scope("/v1/stream") == PREDICT
    assert auth.rest_scope("/v1/admin/reload") == ADMIN and auth.rest_scope("/v1/new") == ADMIN
    assert auth.grpc_scope("/grpc.health.v1.Health/Check") is None
    assert auth.grpc_scope("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
    assert auth.grpc_scope("/bet.v1.Inference/PredictStream") == PREDICT
    assert auth.grpc_scope("/bet.v1.Inference/ReloadModel") == ADMIN


def test_the_docs_make_a_token_and_a_key_file_the_server_accepts(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    security = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", security, flags=re.S)  # the README points there
    env = {"BET_AUTH_JWT_SECRET": sec.SECRET, "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    v = verifier(issuer="https://auth.example.com", audience="bet")
    assert v.verify(done.stdout.strip()) == auth.Principal("jwt:reporting-job", frozenset({PREDICT}))
    [key_file] = re.findall(r"```\n(# bet API keys\n.*?)```", security, flags=re.S)
    assert [p.id for p in auth.parse_api_keys(key_file).values()] == ["key:reporting", "key:ops"]
