"""deploy/: manifests parse, name real commands and real metrics, configs validate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from firstmotion import cli
from firstmotion.config import load_settings
from firstmotion.metrics import registry, stage_metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
YAML_FILES = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
STAGE_COMMANDS = {("stream",), ("worker", "polarity"), ("worker", "associate"),
                  ("worker", "mechanism"), ("worker", "catalog"), ("worker", "stress")}  # fmt: skip


def known_metric_names() -> set[str]:
    from types import SimpleNamespace

    from stream.ingest import IngestMetrics
    from workers.catalog import CatalogStage

    stage_metrics("deploy_check")  # make sure the stage families exist
    IngestMetrics.create()  # the stream's
    CatalogStage(SimpleNamespace(client=None))  # and the catalog's (no connection is made)
    names = set()
    for family in registry().collect():
        if family.type == "counter":  # a labelled counter has no sample before its first use
            names.add(f"{family.name}_total")
        for s in family.samples:
            names.add(s.name)
    return names


def test_alerts_and_dashboard_use_only_metrics_that_exist():
    known = known_metric_names()
    texts = [
        (DEPLOY / "prometheus" / "alerts.yml").read_text(),
        (DEPLOY / "grafana" / "firstmotion-dashboard.json").read_text(),
    ]
    used = set()
    for text in texts:
        text = re.sub(r'__name__[=!]~"[^"]*"', "", text)  # regex matchers name no metric
        used |= set(re.findall(r"\bfirstmotion_[a-z_]+", text))
    assert "firstmotion_stage_last_processed_timestamp_seconds" in used
    assert "firstmotion_stage_dead_letters_total" in used
    assert "firstmotion_stage_backlog_messages" in used
    assert used <= known, f"unknown metrics referenced: {sorted(used - known)}"


def test_grafana_dashboard_is_valid_json_with_queries():
    dash = json.loads((DEPLOY / "grafana" / "firstmotion-dashboard.json").read_text())
    assert dash["uid"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["expr"] for p in dash["panels"] for t in p["targets"])


def test_kubernetes_config_validates():
    s = load_settings(DEPLOY / "k8s" / "firstmotion.toml", environ={})
    assert s.redis.url == ""  # comes from the Secret via FIRSTMOTION_REDIS__URL
    s = load_settings(
        DEPLOY / "k8s" / "firstmotion.toml",
        environ={"FIRSTMOTION_REDIS__URL": "redis://:pw@redis:6379/0"},
    )
    assert s.redis.require_url() == "redis://:pw@redis:6379/0"
    assert s.seedlink.statefile == "/state/seedlink.state"


def _command_words(args: list[str]) -> tuple[str, ...]:
    words = [a for a in args if not a.startswith("-")]
    entry = cli.COMMANDS[words[0]]
    return (words[0], words[1]) if isinstance(entry, dict) else (words[0],)


def _yaml():
    return pytest.importorskip("yaml", reason="PyYAML is not installed; YAML parse not checked")


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path):
    yaml = _yaml()
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


def test_compose_runs_every_stage_with_real_commands():
    yaml = _yaml()
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    seen = set()
    for svc in services.values():
        if "command" in svc and svc.get("image", "").startswith("firstmotion"):
            seen.add(_command_words(svc["command"]))
            assert svc["environment"]["FIRSTMOTION_REDIS__URL"].startswith("redis://")
    assert seen == STAGE_COMMANDS
    assert "redis" in services


def test_kubernetes_deployments_and_gpu_autoscaling():
    yaml = _yaml()
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    seen = set()
    for dep in deployments.values():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        seen.add(_command_words(container["args"]))
        env = {e["name"] for e in container["env"]}
        assert "FIRSTMOTION_REDIS__URL" in env
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert seen == STAGE_COMMANDS
    polarity = deployments["firstmotion-polarity"]["spec"]["template"]["spec"]["containers"][0]
    assert polarity["resources"]["limits"]["nvidia.com/gpu"] == 1
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "firstmotion-polarity"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == "fm:picks"
    assert trigger["metadata"]["consumerGroup"] == "polarity"
    kustom = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for res in kustom["resources"]:
        assert (DEPLOY / "k8s" / res).is_file(), res


def test_prometheus_rules_shape():
    yaml = _yaml()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"FirstmotionStageStalled", "FirstmotionDeadLettersGrowing", "FirstmotionConsumerLag",
            "FirstmotionStationPolarityReversed"} <= set(alerts)  # fmt: skip
    # the station rule reads the catalog's counter, by the labels it has
    station_rule = alerts["FirstmotionStationPolarityReversed"]["expr"]
    assert "firstmotion_catalog_station_polarities_total" in station_rule
    assert 'agreement="disagree"' in station_rule and "by (station)" in station_rule
    assert all(r["expr"] and r["annotations"]["summary"] for r in alerts.values())


def test_every_probed_kubernetes_stage_serves_metrics_on_the_probed_port():
    # regression: the workers serve /metrics and /healthz only when told a port; a probe on
    # 9300 against a worker started without --metrics-port could never pass
    yaml = _yaml()
    checked = 0
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                args = [str(a) for a in c.get("args", [])]
                if not args or args[0] not in ("worker", "stream"):
                    continue
                probes = [c.get(k) for k in ("livenessProbe", "readinessProbe") if c.get(k)]
                ports = {
                    p["containerPort"] for p in c.get("ports", []) if p.get("name") == "metrics"
                }
                assert probes and len(ports) == 1, f"{path.name}: no metrics probe/port"
                (port,) = ports
                if args[0] == "worker":
                    assert "--metrics-port" in args, f"{path.name}: worker without --metrics-port"
                    assert args[args.index("--metrics-port") + 1] == str(port)
                checked += 1
    assert checked == 6
