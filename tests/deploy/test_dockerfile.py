"""The Dockerfile, read statically: no Docker engine runs here or in CI.

test_dockerfile_install.py replays its install steps in a fresh virtual environment.
"""

from __future__ import annotations

import re
import tomllib

from deployfiles import GRPC_PORT, REPO, REST_PORT, dockerfile_stages, exec_form, pip_installs

PINNED_SLIM = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")


def test_it_parses_into_a_builder_and_a_runtime_stage():
    stages = dockerfile_stages()
    assert [s.name for s in stages] == ["builder", "runtime"]
    assert any("--from=builder" in c for c in stages[-1].all("COPY"))


def test_every_base_image_is_the_same_exact_slim_python():
    bases = {s.base for s in dockerfile_stages()}
    assert len(bases) == 1, bases
    (base,) = bases
    assert PINNED_SLIM.match(base), f"{base}: want python:3.11.<patch>-slim-bookworm, never latest"


def test_the_final_stage_runs_as_a_numeric_non_root_user():
    user = dockerfile_stages()[-1].last("USER")
    assert user is not None, "the final stage has no USER: it would run as root"
    uid = user.split(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, user


def test_both_contract_ports_are_exposed_and_set_in_env():
    runtime = dockerfile_stages()[-1]
    exposed = {int(p.split("/")[0]) for e in runtime.all("EXPOSE") for p in e.split()}
    assert exposed == {REST_PORT, GRPC_PORT}
    env = " ".join(runtime.all("ENV"))
    assert f"BET_REST_PORT={REST_PORT}" in env and f"BET_GRPC_PORT={GRPC_PORT}" in env


def test_healthcheck_asks_readiness_with_python_not_curl():
    check = dockerfile_stages()[-1].last("HEALTHCHECK")
    assert check and " CMD " in f" {check}", "no HEALTHCHECK in the final stage"
    command = check.split("CMD", 1)[1]
    assert "/health/ready" in command and "urllib" in command
    assert "curl" not in command and "wget" not in command  # neither is in the slim image


def test_entrypoint_serves_on_all_interfaces_and_cmd_is_explicitly_insecure():
    runtime = dockerfile_stages()[-1]
    assert exec_form(runtime.last("ENTRYPOINT")) == ["bet", "serve", "--host", "0.0.0.0"]
    assert exec_form(runtime.last("CMD")) == ["--insecure"]


def test_torch_is_the_cpu_build_of_the_version_pyproject_pins():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pinned = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch==")]
    installs = pip_installs(dockerfile_stages()[0])
    torch = [argv for argv in installs if any(a.startswith("torch") for a in argv)]
    assert len(torch) == 1 and pinned and pinned[0] in torch[0], (pinned, torch)
    assert "https://download.pytorch.org/whl/cpu" in torch[0]


def test_the_project_installs_like_make_install():
    """`make install` runs `pip install -e '.[dev]'`; the image installs the same project `.`,
    not editable and without the dev tools."""
    makefile = (REPO / "Makefile").read_text()
    project = re.search(r"pip install (-e )?'?\.(\[[\w,]+\])?'?\s*$", makefile, re.M)
    assert project, "make install no longer runs `pip install [-e] .`: follow it in the Dockerfile"
    installs = pip_installs(dockerfile_stages()[0])
    assert installs[-1] == ["."], installs
    assert "/src" in dockerfile_stages()[0].last("WORKDIR")


def test_the_default_model_is_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["model"]
    assert any(p.startswith("default/") for p in data), data
