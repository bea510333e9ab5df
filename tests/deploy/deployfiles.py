"""Readers for the deployment files: the Dockerfile by stage, the k8s manifests by kind."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"

# The contract's defaults and health paths, which every deployment file must agree with.
REST_PORT, GRPC_PORT = 8000, 50051
HEALTH_PATHS = {"/health/live", "/health/ready"}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[dict] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def last(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[-1] if found else None


def dockerfile_stages() -> list[Stage]:
    """Instructions grouped by FROM, with build ARGs already substituted by the parser."""
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    bases = iter(parser.parent_images)
    stages: list[Stage] = []
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            words = instr["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=next(bases)))
        elif stages:
            stages[-1].instructions.append(instr)
    return stages


def exec_form(value: str) -> list[str]:
    """ENTRYPOINT/CMD as an argv list; shell form is split like the shell would."""
    value = value.strip()
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def documents() -> list[tuple[str, dict]]:
    """(file name, resource) for every resource under deploy/k8s; the Kustomization is not one."""
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") != "Kustomization"
    ]


def manifests() -> dict[tuple[str, str], dict]:
    """The resources keyed by (kind, name)."""
    found: dict[tuple[str, str], dict] = {}
    for name, doc in documents():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in found, f"{key} is defined twice ({name})"
        found[key] = doc
    return found


def pip_installs(stage: Stage) -> list[list[str]]:
    """Each `pip install` of a stage's RUN lines, as argv after `install`."""
    found = []
    for run in stage.all("RUN"):
        for part in run.split("&&"):
            argv = shlex.split(part)
            if argv[:2] == ["pip", "install"]:
                found.append(argv[2:])
            elif argv[:4] == ["python", "-m", "pip", "install"]:
                found.append(argv[4:])
    return found
