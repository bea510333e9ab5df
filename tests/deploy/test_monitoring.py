"""deploy/monitoring: the alert rules pass promtool (syntax and their unit tests), the Grafana
dashboard is importable JSON whose queries parse as PromQL, and every bet_* metric that the
dashboard or the rules name is one a real server exports, after real traffic on both doors.

promtool is the Debian package `prometheus` (`make monitoring-tools`): without it the promtool
tests are skipped, or fail when CI is set. The scrape tests need no promtool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deployfiles import REPO
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from tests.harness import Gated, ServerThread

MONITORING = REPO / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts.test.yml"
RUNBOOK = REPO / "docs" / "monitoring.md"

METRIC = re.compile(r"\bbet_[a-z0-9_]+")
UNCERTAINTY = ("bet_answer_confidence_count", "bet_answer_uncertainty_total_nats_count",
               "bet_answer_uncertainty_epistemic_nats_count", "bet_answers_below_threshold_total",
               "bet_answers_unfamiliar_total")
FAMILIAR = "A warm, funny and well acted film."
PLAIN = "It is a film."  # answered, but not with 99% confidence
FOREIGN = "Der Film war eine Katastrophe und viel zu lang"  # unfamiliar: epistemic 0.51 nats
UNFAMILIAR_NATS = 0.3  # the server's default line, set here so that BET_* in the shell cannot move it


def promtool() -> str:
    """promtool's path; a skip without it, or a failure when CI is set."""
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool is missing: install the Debian package `prometheus` (`make monitoring-tools`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_promtool(*args: str | Path, cwd: Path = MONITORING) -> None:
    done = subprocess.run([promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(within: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, the ones inside collapsed rows included."""
    for panel in within:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_queries() -> dict[str, str]:
    """{where: PromQL} of every panel target."""
    return {f"panel {p['id']} ({p['title']}) {t['refId']}": t["expr"]
            for p in panels(dashboard()["panels"]) for t in p.get("targets", [])}


def variable_queries() -> dict[str, str]:
    found = {}
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            found[f"variable {var['name']}"] = query["query"] if isinstance(query, dict) else query
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def as_promql(expr: str) -> str:
    """A panel's query with Grafana's variables replaced as Grafana would at some moment."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{?model_version\}?", ".*", expr)  # the "All" value
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


# --- promtool ---------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    run_promtool("check", "rules", ALERTS)


def test_alert_rules_pass_their_unit_tests() -> None:
    """alerts.test.yml: the unfamiliar jump fires for the version that jumped only, a model not
    ready and a missing server page after 2 minutes, a fresh process's first failed reload
    counts, and the error-rate and latency alerts ignore probes, client errors and batches."""
    run_promtool("test", "rules", ALERT_TESTS)


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each panel query, as a recording rule: `promtool check rules` parses it."""
    rules = [{"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
             for i, expr in enumerate(dashboard_queries().values())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", path, cwd=tmp_path)


# --- the files themselves ---------------------------------------------------------------


def test_dashboard_is_importable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    ids = [p["id"] for p in panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variable_queries()["variable model_version"] == "label_values(bet_model_requests_total, model_version)"
    for panel in panels(board["panels"]):
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]


def test_dashboard_shows_what_an_operator_needs() -> None:
    """One query at least for each thing docs/monitoring.md says the dashboard shows."""
    queries = " ".join(dashboard_queries().values())
    for needed in ("bet_requests_total", "bet_request_latency_seconds_bucket", "bet_queue_depth",
                   "bet_queue_wait_seconds_bucket", "bet_batch_size", "bet_forward_seconds_bucket",
                   "bet_answer_confidence_bucket", "bet_answer_uncertainty_total_nats_bucket",
                   "bet_answer_uncertainty_epistemic_nats_bucket", "bet_answers_unfamiliar_total",
                   "bet_answers_below_threshold_total", "bet_model_ready", "bet_model_reloads_total"):
        assert needed in queries, needed
    for q in (0.5, 0.95, 0.99):
        assert f"histogram_quantile({q}, sum by (le, protocol) (rate(bet_request_latency_seconds_bucket" in queries


def test_every_alert_says_how_bad_what_and_where_to_look() -> None:
    slugs = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
             for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/monitoring.md" and anchor in slugs, f"{name}: no heading #{anchor} in {page}"


# --- against a real server --------------------------------------------------------------


def _drop_one_text(server: ServerThread, gated: Gated) -> None:
    """A gRPC caller that gives up while its text waits behind a held forward pass: the text
    is dropped, never computed (bet_dropped_total)."""
    gated.entered.clear()
    gated.gate.clear()
    try:
        holder = threading.Thread(target=httpx.post, args=(f"{server.rest_url}/v1/predict",),
                                  kwargs={"json": {"text": FAMILIAR, "confidence_threshold": 0}, "timeout": 60})
        holder.start()
        assert gated.entered.wait(10), "the first request never reached the forward pass"
        with pytest.raises(grpc.RpcError) as gave_up:
            server.stub.Predict(pb.PredictRequest(text=PLAIN, confidence_threshold=0), timeout=0.5)
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        gated.gate.set()
    holder.join(30)


@pytest.fixture(scope="module")
def scrape(predictor: Any) -> list[Any]:
    """The metric families of GET /metrics after traffic on both doors: answered, below the
    caller's threshold, unfamiliar, a batch, a failed reload and a dropped text."""
    gated = Gated(predictor)
    with ServerThread(gated, unfamiliar_epistemic_nats=UNFAMILIAR_NATS) as server:
        http, stub = server.http, server.stub
        assert http.post("/v1/predict", json={"text": FAMILIAR, "confidence_threshold": 0}).status_code == 200
        low = http.post("/v1/predict", json={"text": PLAIN, "confidence_threshold": 0.99})
        assert low.status_code == 422, low.text
        foreign = http.post("/v1/predict", json={"text": FOREIGN, "confidence_threshold": 0})
        assert foreign.status_code == 200, foreign.text
        assert foreign.json()["uncertainty"]["epistemic"] > UNFAMILIAR_NATS, "the foreign text reads familiar"
        batch = http.post("/v1/predict/batch", json={"texts": [FAMILIAR, PLAIN], "confidence_threshold": 0})
        assert batch.status_code == 200, batch.text

        stub.Predict(pb.PredictRequest(text=FAMILIAR, confidence_threshold=0), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(pb.PredictRequest(text=PLAIN, confidence_threshold=0.99), timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        stub.Predict(pb.PredictRequest(text=FOREIGN, confidence_threshold=0), timeout=30)
        stub.PredictBatch(pb.PredictBatchRequest(texts=[FAMILIAR, PLAIN], confidence_threshold=0), timeout=30)

        # no model store: another version cannot be found (bet_model_reloads_total{outcome="model_not_found"})
        assert http.post("/v1/admin/reload", json={"version": "no-such-version"}).status_code == 404
        _drop_one_text(server, gated)

        deadline = time.monotonic() + 10  # the batcher counts the drop when it next takes from its queue
        while "bet_dropped_total{" not in (text := http.get("/metrics").text) and time.monotonic() < deadline:
            time.sleep(0.1)
    return list(text_string_to_metric_families(text))


def samples(families: list[Any], name: str) -> list[Any]:
    return [s for f in families for s in f.samples if s.name == name]


def test_every_metric_the_dashboard_and_rules_name_is_exported(scrape: list[Any]) -> None:
    """Histograms show as _bucket, _sum and _count, counters as _total: the names must be those."""
    exported = {s.name for f in scrape for s in f.samples}
    named = {**dashboard_queries(), **variable_queries(), **{r["alert"]: r["expr"] for r in alert_rules()}}
    missing = {where: sorted(set(METRIC.findall(expr)) - exported) for where, expr in named.items()}
    assert not {where: names for where, names in missing.items() if names}
    assert all(METRIC.search(expr) for expr in named.values())  # each names one at least


def test_uncertainty_metrics_come_from_both_doors(scrape: list[Any], predictor: Any) -> None:
    for name in UNCERTAINTY:
        found = samples(scrape, name)
        assert {s.labels["protocol"] for s in found} == {"rest", "grpc"}, name
        assert {s.labels["model_version"] for s in found} == {predictor.version}, name
        assert all(s.value >= 1 for s in found), name
    # the dashboard's model_version variable reads its values from here
    assert {s.labels["model_version"] for s in samples(scrape, "bet_model_requests_total")} == {predictor.version}


def test_the_unfamiliar_counter_counts_only_texts_above_the_line(scrape: list[Any]) -> None:
    """One foreign text per door was above the line; the familiar ones were not."""
    unfamiliar = {s.labels["protocol"]: s.value for s in samples(scrape, "bet_answers_unfamiliar_total")}
    answered = {s.labels["protocol"]: s.value for s in samples(scrape, "bet_answer_confidence_count")}
    assert unfamiliar == {"rest": 1, "grpc": 1}
    assert answered["rest"] >= 5 and answered["grpc"] >= 5  # single, below, foreign and a batch of two
