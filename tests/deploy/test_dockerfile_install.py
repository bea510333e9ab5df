"""The Dockerfile's install steps, replayed in a fresh virtual environment (no Docker engine here).

What this proves, in under two minutes:
- The build context is what .dockerignore lets in, copied to a temporary folder: a file the
  install needs but the allow-list leaves out fails here as it would in `docker build`.
- The venv is new and isolated (`python -m venv`, never `--system-site-packages`), and the
  builder stage's `pip install` commands run in it verbatim, with one change: the PyTorch CPU
  index is dropped, since only PyPI is reachable here; the machine's pip configuration supplies
  the same torch==2.13.0 CPU wheel from its local wheel folder. A full install with
  dependencies, not `--no-deps`: resolving them is the part of the build most likely to break,
  and the local torch wheel keeps it fast.
- The installed `bet` (not the checkout: every command runs outside the repo) starts with the
  image's ENTRYPOINT and CMD, the image's HEALTHCHECK command passes against it with the
  embedded default model, and SIGTERM stops it within the Deployment's grace period.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployfiles import REPO, dockerfile_stages, exec_form, manifests, pip_installs


def _regex(pattern: str) -> re.Pattern:
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(out + "$")


def context_files(root: Path = REPO) -> list[str]:
    """Files `docker build` would send: .dockerignore rules, last match wins, a rule on a folder
    covering everything in it."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, _regex(line.lstrip("!").strip("/"))))

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for keep, rx in rules:
            if any(rx.match(p) for p in prefixes):
                verdict = not keep
        return verdict

    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else f"{rel_dir}/"
        # Ignored folders are not walked: this reads no rule re-including a file inside one.
        dirnames[:] = [d for d in dirnames if not ignored(prefix + d)]
        found += [prefix + f for f in filenames if not ignored(prefix + f)]
    return sorted(found)


def test_the_build_context_holds_the_package_and_nothing_else():
    files = context_files()
    tops = {f.split("/")[0] for f in files}
    assert {"pyproject.toml", "README.md", "model", "server"} <= tops, tops
    assert not tops & {".git", ".venv", "tests", "clients", "bench", "deploy"}, tops
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A fresh venv holding what the image's builder stage installs; its bin/ and a clean env."""
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    for rel in context_files():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, context / rel)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {"PATH": f"{venv / 'bin'}:{env.get('PATH', '')}", "HOME": str(root)}
    env["MPLCONFIGDIR"] = str(root / "matplotlib")
    for argv in pip_installs(dockerfile_stages()[0]):
        while "--index-url" in argv:  # only PyPI is reachable here: see the module docstring
            at = argv.index("--index-url")
            del argv[at : at + 2]
        subprocess.run([venv / "bin" / "pip", "install", *argv], cwd=context, env=env, check=True)
    shutil.rmtree(context)  # from here on only the venv can provide the package
    return venv / "bin", env, root


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_installed_package_has_torch_cpu_and_the_default_model(image):
    bin_dir, env, cwd = image
    probe = (
        "import importlib.resources as r, sys, torch, model, server;"
        "d = r.files('model') / 'default';"
        "assert d.is_dir() and any(d.iterdir()), 'model/default is empty or missing';"
        "assert torch.__version__.startswith('2.13.0'), torch.__version__;"
        "assert torch.version.cuda is None, 'not the CPU build';"
        "assert model.__file__.startswith(sys.prefix) and server.__file__.startswith(sys.prefix)"
    )
    run = subprocess.run([bin_dir / "python", "-c", probe], cwd=cwd, env=env, capture_output=True)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_entrypoint_serves_passes_the_healthcheck_and_drains_on_sigterm(image):
    bin_dir, env, cwd = image
    runtime = dockerfile_stages()[-1]
    argv = exec_form(runtime.last("ENTRYPOINT")) + exec_form(runtime.last("CMD"))
    assert shutil.which(argv[0], path=env["PATH"]) == str(bin_dir / argv[0])
    healthcheck = runtime.last("HEALTHCHECK").split("CMD", 1)[1].strip()
    env = env | {"BET_REST_PORT": str(_free_port()), "BET_GRPC_PORT": str(_free_port())}
    spec = manifests()[("Deployment", "bet")]["spec"]["template"]["spec"]
    pre_stop = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = spec["terminationGracePeriodSeconds"] - pre_stop

    log = cwd / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            check = subprocess.run(["sh", "-c", healthcheck], cwd=cwd, env=env, capture_output=True)
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, check.stderr.decode(errors="replace")[-2000:]
            time.sleep(1)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=grace) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
