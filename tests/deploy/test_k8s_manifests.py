"""deploy/k8s: valid against the Kubernetes schemas, consistent with the contract and each other.

kubernetes-validate bundles the schemas, so this runs offline. Strict mode rejects unknown
fields, so a misspelt key fails instead of being silently ignored by the API server.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from deployfiles import (
    GRPC_PORT,
    HEALTH_PATHS,
    K8S,
    REST_PORT,
    dockerfile_stages,
    documents,
    manifests,
)

# 1.29: oldest release still in common support; the native gRPC probe is GA since 1.27.
VERSIONS = ["1.29.0", latest_version()]
# Settings the contract names that server/settings.py may read elsewhere (auth, limits, TLS).
CONTRACT_ENV = {
    "BET_AUTH_JWT_SECRET",
    "BET_AUTH_JWT_PUBLIC_KEY_FILE",
    "BET_AUTH_JWT_ISSUER",
    "BET_AUTH_JWT_AUDIENCE",
    "BET_AUTH_API_KEYS_FILE",
    "BET_RATE_LIMIT_PER_SECOND",
    "BET_RATE_LIMIT_BURST",
    "BET_TLS_CERT_FILE",
    "BET_TLS_KEY_FILE",
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_resource_is_valid_against_the_kubernetes_schema(name, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_misspelt_field():
    doc = copy.deepcopy(manifests()[("Deployment", "bet")])
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_kustomization_applies_every_resource_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    images = {i["name"] for i in kustomization["images"]}
    assert {c["image"].split(":")[0] for c in _pod()["containers"]} <= images


def _pod() -> dict:
    return manifests()[("Deployment", "bet")]["spec"]["template"]["spec"]


def _container() -> dict:
    return _pod()["containers"][0]


def test_container_and_services_use_the_contract_ports():
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert ports == {"http": REST_PORT, "grpc": GRPC_PORT}
    config = manifests()[("ConfigMap", "bet-config")]["data"]
    assert config["BET_REST_PORT"] == str(REST_PORT) and config["BET_GRPC_PORT"] == str(GRPC_PORT)
    for (kind, name), doc in manifests().items():
        if kind == "Service":
            for p in doc["spec"]["ports"]:
                assert p["targetPort"] in ports and p["appProtocol"] == p["name"], (name, p)
                assert p["port"] == ports[p["targetPort"]], (name, p)


def test_probes_check_both_doors_on_real_paths():
    c = _container()
    assert c["readinessProbe"]["grpc"]["port"] == GRPC_PORT
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert c["startupProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in HEALTH_PATHS
        assert c[probe]["httpGet"]["port"] in ("http", REST_PORT)


def _settings_env() -> dict[str, object]:
    """BET_* name -> default of every server setting."""
    from server.settings import Settings

    return {f"BET_{name.upper()}": f.default for name, f in Settings.model_fields.items()}


def test_every_bet_variable_is_a_real_setting():
    # The server ignores unknown BET_* names: a misspelt or renamed one would do nothing, silently.
    known = set(_settings_env()) | CONTRACT_ENV
    names = set(manifests()[("ConfigMap", "bet-config")]["data"])
    names |= {e["name"] for e in _container()["env"]}
    assert {n for n in names if n.startswith("BET_")} <= known


def test_the_grace_period_outlasts_the_prestop_sleep_and_the_drain():
    config = manifests()[("ConfigMap", "bet-config")]["data"]
    drain = float(config.get("BET_DRAIN_TIMEOUT_S", _settings_env()["BET_DRAIN_TIMEOUT_S"]))
    sleep = int(_container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert sleep > 0
    assert _pod()["terminationGracePeriodSeconds"] > sleep + drain


def test_resources_have_requests_and_limits():
    resources = _container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys()


def test_it_runs_as_the_images_non_root_user_on_a_read_only_root():
    pod, c = _pod(), _container()
    uid = int(dockerfile_stages()[-1].last("USER").split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # The one writable place the image relies on (MPLCONFIGDIR, HOME).
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


def test_it_serves_with_authentication_not_insecure():
    c = _container()
    assert "--insecure" not in c.get("command", []) + c.get("args", [])
    # Setting `command` without `args` makes Kubernetes ignore the image's CMD (--insecure).
    assert c["command"][:2] == ["bet", "serve"] and "args" not in c
    env = {e["name"] for e in c["env"]}
    assert any(name.startswith("BET_AUTH_") for name in env)


def test_secret_template_holds_every_key_the_deployment_reads():
    secret = manifests()[("Secret", "bet-auth")]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    refs = [e["valueFrom"].get("secretKeyRef") for e in _container()["env"] if "valueFrom" in e]
    used = {ref["key"] for ref in refs if ref and ref["name"] == "bet-auth"}
    for volume in _pod()["volumes"]:
        if volume.get("secret", {}).get("secretName") == "bet-auth":
            used |= {item["key"] for item in volume["secret"]["items"]}
    assert used and used <= keys, (used, keys)


def test_selectors_match_the_pods_labels():
    deployment = manifests()[("Deployment", "bet")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [deployment["spec"]["selector"]["matchLabels"]]
    for (kind, _), doc in manifests().items():
        if kind == "PodDisruptionBudget":
            selectors.append(doc["spec"]["selector"]["matchLabels"])
        elif kind == "Service":
            selectors.append(doc["spec"]["selector"])
    for selector in selectors:
        assert selector.items() <= labels.items(), selector


def test_the_autoscaler_targets_the_deployment_on_cpu():
    hpa = manifests()[("HorizontalPodAutoscaler", "bet")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "bet"}
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    # With at most one pod disrupted at a time, two replicas keep one serving through a drain.
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert "replicas" not in manifests()[("Deployment", "bet")]["spec"]  # the HPA owns the count
