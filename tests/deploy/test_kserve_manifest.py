"""deploy/kserve/inferenceservice.yaml: a KServe InferenceService (a CRD, so no bundled schema)
checked statically: KServe's own rules for a custom predictor, consistency with deploy/k8s and
the Dockerfile, the contract's ports, the Open Inference Protocol's health paths, real BET_*
settings. Its pod part is validated against the Kubernetes schema (kubernetes-validate, strict),
and every field against KServe's SDK models when tests/oip/.venv-kserve exists (make
oip-clients)."""

from __future__ import annotations

import json
import os
import subprocess

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from deployfiles import GRPC_PORT, REPO, REST_PORT, dockerfile_stages, manifests

KSERVE = REPO / "deploy" / "kserve"
MANIFEST = KSERVE / "inferenceservice.yaml"
OIP_HEALTH = {"/v2/health/live", "/v2/health/ready"}
# KServe's fields of a predictor (ComponentExtensionSpec and PredictorSpec's own); the rest of a
# custom predictor is a Kubernetes PodSpec.
KSERVE_PREDICTOR_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "containerConcurrency",
    "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy",
    "autoScaling", "storageUris", "workerSpec", "model", "sklearn", "xgboost", "tensorflow", "pytorch",
    "triton", "onnx", "huggingface", "pmml", "lightgbm", "paddle",
}


def _docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def _isvc() -> dict:
    [doc] = _docs()
    return doc


def _predictor() -> dict:
    return _isvc()["spec"]["predictor"]


def _container() -> dict:
    [container] = [c for c in _predictor()["containers"] if c["name"] == "kserve-container"]
    return container


def _env() -> dict[str, dict]:
    return {e["name"]: e for e in _container().get("env", [])}


def _k8s_container() -> dict:
    return manifests()[("Deployment", "bet")]["spec"]["template"]["spec"]["containers"][0]


def test_one_inference_service():
    docs = _docs()
    assert len(docs) == 1
    assert docs[0]["apiVersion"] == "serving.kserve.io/v1beta1"
    assert docs[0]["kind"] == "InferenceService"
    assert docs[0]["metadata"]["name"] == "bet"


def test_a_custom_predictor_declaring_the_v2_protocol():
    predictor = _predictor()
    # A custom predictor is `containers` alone, its serving container named kserve-container.
    assert not {"model", "sklearn", "pytorch", "triton"} & predictor.keys()
    assert [c["name"] for c in predictor["containers"]] == ["kserve-container"]
    # KServe reads a custom predictor's protocol from its PROTOCOL env var; `protocolVersion`
    # is not a field of a predictor (only of `model` and the framework specs).
    assert _env()["PROTOCOL"]["value"] == "v2"
    assert "protocolVersion" not in predictor


def test_standard_mode_with_the_hpa_on_cpu():
    annotations = _isvc()["metadata"]["annotations"]
    # Both ports are exposed only in Standard mode (Knative takes one); scaleMetric cpu passes
    # KServe's validator only with deploymentMode Standard and autoscalerClass hpa.
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    predictor = _predictor()
    assert predictor["scaleMetric"] == "cpu" and 1 <= predictor["scaleTarget"] <= 100
    hpa = manifests()[("HorizontalPodAutoscaler", "bet")]["spec"]
    assert predictor["minReplicas"] == hpa["minReplicas"] and predictor["maxReplicas"] == hpa["maxReplicas"]


def test_the_image_is_deploy_k8s_image():
    assert _container()["image"] == _k8s_container()["image"]


def test_ports_are_the_contracts_under_kserves_names():
    ports = [(p["name"], p["containerPort"]) for p in _container()["ports"]]
    # The first port is the one KServe puts behind the predictor Service's port 80: REST.
    assert ports == [("http1", REST_PORT), ("h2c", GRPC_PORT)]
    env = _env()
    assert env["BET_REST_PORT"]["value"] == str(REST_PORT)
    assert env["BET_GRPC_PORT"]["value"] == str(GRPC_PORT)
    defaults = _settings_defaults()
    assert (defaults["BET_REST_PORT"], defaults["BET_GRPC_PORT"]) == (REST_PORT, GRPC_PORT)


def test_probes_ask_the_oip_health_paths():
    c = _container()
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in OIP_HEALTH
        assert c[probe]["httpGet"]["port"] in ("http1", REST_PORT)
    # As long to start as deploy/k8s allows: the model loads and warms first.
    k8s = _k8s_container()["startupProbe"]
    assert (c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
            >= k8s["periodSeconds"] * k8s["failureThreshold"])


def _settings_defaults() -> dict[str, object]:
    from server.settings import Settings

    return {f"BET_{name.upper()}": f.default for name, f in Settings.model_fields.items()}


def test_every_bet_variable_is_a_real_setting():
    names = {n for n in _env() if n.startswith("BET_")}
    assert names <= set(_settings_defaults()), names - set(_settings_defaults())


def test_the_oip_model_name_is_a_valid_setting():
    from server.settings import Settings

    name = _env()["BET_OIP_MODEL_NAME"]["value"]
    assert Settings(oip_model_name=name).oip_model_name == name


def test_it_listens_beyond_loopback_with_authentication():
    c, env = _container(), _env()
    assert env["BET_HOST"]["value"] == "0.0.0.0"
    assert "--insecure" not in c.get("command", []) + c.get("args", [])
    # `command` without `args`: Kubernetes ignores the image's CMD (--insecure).
    assert c["command"][:2] == ["bet", "serve"] and "args" not in c
    assert any(n.startswith("BET_AUTH_") for n in env)
    assert "BET_INSECURE" not in env


def test_secret_references_are_keys_of_the_secret_template():
    secret = manifests()[("Secret", "bet-auth")]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    used = {e["valueFrom"]["secretKeyRef"]["key"] for e in _container()["env"]
            if "secretKeyRef" in e.get("valueFrom", {}) and e["valueFrom"]["secretKeyRef"]["name"] == "bet-auth"}
    for volume in _predictor().get("volumes", []):
        if volume.get("secret", {}).get("secretName") == "bet-auth":
            used |= {item["key"] for item in volume["secret"]["items"]}
    assert used and used <= keys, (used, keys)
    mounted = {m["mountPath"] for m in _container()["volumeMounts"]}
    assert os.path.dirname(_env()["BET_AUTH_API_KEYS_FILE"]["value"]) in mounted


def test_it_runs_as_the_images_non_root_user_on_a_read_only_root():
    predictor, c = _predictor(), _container()
    uid = int(dockerfile_stages()[-1].last("USER").split(":")[0])
    assert predictor["securityContext"]["runAsNonRoot"] is True
    assert predictor["securityContext"]["runAsUser"] == uid
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


def test_the_grace_period_outlasts_the_prestop_sleep_and_the_drain():
    drain = float(_env()["BET_DRAIN_TIMEOUT_S"]["value"])
    sleep = int(_container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert _predictor()["terminationGracePeriodSeconds"] > sleep + drain


def test_resources_have_requests_and_limits():
    resources = _container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys()
    assert resources == _k8s_container()["resources"]


def test_metrics_are_announced_on_the_rest_port():
    annotations = _predictor()["annotations"]
    assert annotations["prometheus.kserve.io/port"] == str(REST_PORT)
    assert annotations["prometheus.kserve.io/path"] == "/metrics"


@pytest.mark.parametrize("version", ["1.29.0", latest_version()])
def test_the_pod_part_is_valid_against_the_kubernetes_schema(version):
    pod_spec = {k: v for k, v in _predictor().items() if k not in KSERVE_PREDICTOR_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bet"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, version, strict=True)


# Walks the manifest against KServe's SDK models (kserve.V1beta1*, kubernetes.client.V1*):
# every key a field of its model, every value of its declared type. Prints the problems as JSON.
STRICT_CHECK = r"""
import json, re, sys
import yaml
import kserve, kubernetes.client as k8s

def model(name):
    return getattr(kserve, name, None) or getattr(k8s, name, None)

def check(value, typ, path, problems):
    if value is None:
        return
    typ = typ.strip()
    if m := re.fullmatch(r"[lL]ist\[(.+)\]", typ):
        if not isinstance(value, list):
            problems.append(f"{path}: not a list"); return
        for i, v in enumerate(value):
            check(v, m.group(1), f"{path}[{i}]", problems)
        return
    if m := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", typ):
        if not isinstance(value, dict):
            problems.append(f"{path}: not a map"); return
        for k, v in value.items():
            check(v, m.group(1) or m.group(2), f"{path}.{k}", problems)
        return
    prim = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "date": str}
    if typ in prim:
        if not isinstance(value, prim[typ]) or (typ == "int" and isinstance(value, bool)):
            problems.append(f"{path}: {value!r} is not {typ}")
        return
    if typ == "object":
        return
    cls = model(typ)
    if cls is None:
        problems.append(f"{path}: unknown model {typ}"); return
    if not isinstance(value, dict):
        problems.append(f"{path}: not an object ({typ})"); return
    fields = {wire: attr for attr, wire in cls.attribute_map.items()}
    for key, v in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}: not a field of {typ}")
        else:
            check(v, cls.openapi_types[fields[key]], f"{path}.{key}", problems)

problems = []
check(yaml.safe_load(open(sys.argv[1])), "V1beta1InferenceService", "", problems)
print(json.dumps(problems))
"""


def test_every_field_is_known_to_kserves_sdk():
    python = REPO / "tests" / "oip" / ".venv-kserve" / "bin" / "python"
    if not (python.exists() and (python.parent.parent / ".installed").exists()):
        message = f"{python.parent.parent} is missing: run make oip-clients"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), "-c", STRICT_CHECK, str(MANIFEST)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == []


def test_the_strict_check_rejects_a_protocol_version_on_a_custom_predictor(tmp_path):
    """The check above would catch the field KServe would drop: protocolVersion on `predictor`."""
    python = REPO / "tests" / "oip" / ".venv-kserve" / "bin" / "python"
    if not python.exists():
        pytest.skip("tests/oip/.venv-kserve is missing: run make oip-clients")
    doc = _isvc()
    doc["spec"]["predictor"]["protocolVersion"] = "v2"
    doc["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), "-c", STRICT_CHECK, str(bad)], capture_output=True, text=True,
                          timeout=120, env=env)
    problems = json.loads(done.stdout)
    assert any("protocolVersion: not a field" in p for p in problems), problems
    assert any("containerPort: '8000' is not int" in p for p in problems), problems
