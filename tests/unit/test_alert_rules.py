"""Monitoring as code: deploy/prometheus (scrape config, alert rules and their promtool unit
tests), deploy/grafana (the dashboard and its provisioning) and the two compose services.

promtool comes from deploy/local/promtool.sh (on PATH, cached under .data/tools, or fetched
once from Debian's `prometheus` package); no server runs. Every metric an alert, a rule test
or a panel names must be one the code registers with prometheus_client (the modules of
METRIC_MODULES, imported), with the labels it uses: a misspelt or renamed metric cannot hide
behind a rule test written with the same spelling.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from connectors.dead_letters import DEFECT_PREFIX, KAFKA_ERROR_PREFIX, reason_class
from loyalnest import registry
from loyalnest.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "loyalnest.json"
COMPOSE = DEPLOY / "docker-compose.yml"
PROMTOOL_SH = DEPLOY / "local" / "promtool.sh"

# The modules that define the metrics the flows and the API export (importing one registers
# its metrics in prometheus_client's REGISTRY); Bytewax's Kafka source defines the lag gauge.
METRIC_MODULES = (
    "flows.points",
    "flows.tiers",
    "flows.rfm",
    "flows.referrals",
    "flows.customers",
    "flows.order_archive",
    "sinks.mongo",
    "sinks.postgres",
    "sinks.tiers",
    "sinks.retry",
    "connectors.dead_letters",
    "api.app",
    "api.request_metrics",
    "loyalnest.liveness",
    "bytewax.connectors.kafka",
)
# Series Prometheus makes itself, with their labels (besides the target's).
SCRAPE_SERIES = {"up": frozenset[str]()}
# Labels the scrape target adds to every series (prometheus.yml): `flow` on the flows' job,
# `round` on the round jobs'.
TARGET_LABELS = frozenset({"job", "instance", "flow", "round"})
# The series a metric family of each type exposes, by suffix (prometheus_client's names).
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}
# The values of loyalnest_dead_letters_total's `reason`: reason_class of each kind of reason.
DEAD_LETTER_REASONS = frozenset(
    reason_class(reason) for reason in (f"{KAFKA_ERROR_PREFIX}x", f"{DEFECT_PREFIX}x", "x")
)
SEVERITIES = frozenset({"critical", "warning"})
RUNBOOKS = ("README.md#operations", "README.md#dead-letters")
# Grafana's variables, replaced by values PromQL accepts before promtool parses an expression.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$flow": ".*"}


# ---------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_promtool(promtool: str, *args: str) -> str:
    """Run promtool from the repository root; its output, or a failure that shows it."""
    result = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} exited {result.returncode}:\n{output}")
    return output


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "inf", "nan"}
    | {"group_left", "group_right", "atan2"}
)
_GROUPING_LABELS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_SELECTOR = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or strings)."""
    for pattern in (_STRING, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(expr)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }


def grouping_labels(expr: str) -> set[str]:
    """The labels of an expression's by/without/on/ignoring/group_* clauses."""
    expr = _STRING.sub('""', expr)
    return {
        label.strip()
        for match in _GROUPING_LABELS.finditer(expr)
        for label in match.group(1).split(",")
        if label.strip()
    }


def matcher_labels(expr: str) -> dict[str, set[str]]:
    """Metric name -> the labels its selectors match on (`name{label="..."}`), in an expression
    or an input series of a rule test. Selectors without a name are left out."""
    labels: dict[str, set[str]] = {}
    for match in _SELECTOR.finditer(_STRING.sub('""', expr)):
        name, matchers = match.groups()
        if name is not None and name.lower() not in _KEYWORDS:
            labels.setdefault(name, set()).update(_MATCHER.findall(matchers))
    return labels


@functools.cache
def exported_series() -> dict[str, frozenset[str]]:
    """Every series name the code exports -> its label names (without the target's labels).

    Names come from REGISTRY.collect(): a family's samples, and the series its type always
    exposes (a labelled metric without children yet has no samples: a Counter `x_total`
    registers family `x`, exposing `x_total` and `x_created`; a Histogram `_bucket`, `_count`,
    `_sum`). Label names come from the metric objects (prometheus_client has no public way to
    list them, hence the private `_collector_to_names` and `_labelnames`)."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    declared: dict[str, frozenset[str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                declared[family.name] = frozenset(collector._labelnames)
    series: dict[str, frozenset[str]] = dict(SCRAPE_SERIES)
    for family in REGISTRY.collect():
        labels = declared.get(family.name, frozenset())
        names = {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
        for name in names | {sample.name for sample in family.samples}:
            extra = {"le"} if name.endswith("_bucket") else set()
            seen = {k for sample in family.samples if sample.name == name for k in sample.labels}
            series[name] = labels | extra | seen
    return series


def unknown_metrics_and_labels(expr: str) -> list[str]:
    """What an expression names that the code does not export: metrics, and labels (in its
    matchers, and in its grouping clauses for every metric it selects) that the metric does
    not have and the scrape target does not add."""
    exported = exported_series()
    names = metric_names(expr) | set(matcher_labels(expr))
    problems = [f"metric {name}" for name in sorted(names - set(exported))]
    for name, labels in matcher_labels(expr).items():
        if name not in exported:
            continue
        allowed = exported[name] | TARGET_LABELS
        problems += [f"label {label} of {name}" for label in sorted(labels - allowed)]
    for name in sorted(metric_names(expr) & set(exported)):
        allowed = exported[name] | TARGET_LABELS
        problems += [
            f"label {label} of {name}" for label in sorted(grouping_labels(expr) - allowed)
        ]
    return problems


def reason_values(expr: str) -> set[str]:
    """The values an expression or a series compares `reason` with (=, !=; no regexes)."""
    return set(re.findall(r'\breason\s*!?=\s*"([^"]*)"', expr))


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]
    ]
    return [rule for rule in rules if "alert" in rule]


def alert_names() -> set[str]:
    return {rule["alert"] for rule in alert_rules()}


def rule_test_cases() -> Iterator[tuple[str, str, list[Any]]]:
    """(test name, alertname, exp_alerts) for every alert_rule_test in alerts.test.yml."""
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for case in test.get("alert_rule_test") or []:
            yield test["name"], case["alertname"], case.get("exp_alerts") or []


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panel_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = load_yaml(COMPOSE)["services"][name]
    return service


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (relative to deploy/)."""
    binds: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            binds[target] = (DEPLOY / source).resolve()
    return binds


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host path a container path of the service comes from, through its bind mounts."""
    for target, source in mounts(service).items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not under a bind mount of the service")


# ---------------------------------------------------------------------------- promtool


@pytest.fixture(scope="session")
def promtool() -> str:
    result = subprocess.run(
        ["bash", str(PROMTOOL_SH)],  # noqa: S607 - bash from PATH, as the Makefile runs it
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{PROMTOOL_SH} exited {result.returncode}:\n{result.stderr}")
    path = result.stdout.strip()
    assert Path(path).is_file(), f"{PROMTOOL_SH} printed {path!r}, not a file"
    return path


def test_alert_rules_are_valid(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(ALERTS.relative_to(ROOT)))

    assert f"SUCCESS: {len(alert_rules())} rules found" in output, output


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", str(ALERT_TESTS.relative_to(ROOT)))


def test_prometheus_config_is_valid(promtool: str) -> None:
    run_promtool(promtool, "check", "config", str(CONFIG.relative_to(ROOT)))


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool has no query parser command here, so each panel query becomes a recording
    rule and `check rules` parses them."""
    rules = []
    for index, expr in enumerate(panel_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    run_promtool(promtool, "check", "rules", str(path))


# ---------------------------------------------------------------------------- alert rules


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    cases = list(rule_test_cases())
    fires = {alert for _, alert, expected in cases if expected}
    quiet = {alert for _, alert, expected in cases if not expected}

    assert alert_names() - fires == set(), "alerts without a test case that fires"
    assert alert_names() - quiet == set(), "alerts without a test case that stays quiet"
    assert {alert for _, alert, _ in cases} <= alert_names(), "tests of alerts that do not exist"


def test_the_required_alerts_exist() -> None:
    required = {
        "LoyalNestDeadLettersGrowing",
        "LoyalNestDeadLetterDefects",
        "LoyalNestConsumerLagHigh",
        "LoyalNestFlowDown",
        "LoyalNestFlowMetricsAbsent",
        "LoyalNestApi5xxRate",
        "LoyalNestSinkRetries",
        "LoyalNestOrderAgeHigh",
    }

    assert required <= alert_names()
    assert len(alert_rules()) == len(alert_names()), "an alert name is used twice"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_severity_templated_annotations_and_runbook(rule: dict[str, Any]) -> None:
    annotations = rule.get("annotations", {})

    assert rule.get("labels", {}).get("severity") in SEVERITIES
    assert {"summary", "description", "runbook"} <= set(annotations)
    assert any(section in annotations["runbook"] for section in RUNBOOKS)
    # Whatever an alert is split by must show in its summary (which flow, which reason...).
    grouping = re.search(r"\bby \(([^)]*)\)", rule["expr"])
    for label in grouping.group(1).split(",") if grouping else []:
        assert f"$labels.{label.strip()}" in annotations["summary"], label


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_uses_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    assert metric_names(rule["expr"]), f"no metric found in {rule['expr']!r}"
    assert unknown_metrics_and_labels(rule["expr"]) == []


def test_rule_test_input_series_use_only_exported_metrics_and_labels() -> None:
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for series in test.get("input_series", []):
            name = series["series"].split("{")[0].strip()
            assert name in exported_series(), f"{test['name']}: unknown metric {name}"
            assert unknown_metrics_and_labels(series["series"]) == [], test["name"]


def test_dead_letter_reasons_are_the_codes_classes() -> None:
    """reason is one of reason_class's values everywhere; a defect (our bug) pages, the
    others (the record, the consumer) warn, and every class is covered by one alert."""
    assert {"invalid", "defect", "kafka_error"} == DEAD_LETTER_REASONS
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for series in test.get("input_series", []):
            assert reason_values(series["series"]) <= DEAD_LETTER_REASONS, test["name"]
    severities = {}
    for rule in alert_rules():
        if "loyalnest_dead_letters_total" in metric_names(rule["expr"]):
            assert reason_values(rule["expr"]) <= DEAD_LETTER_REASONS, rule["alert"]
            severities[rule["alert"]] = rule["labels"]["severity"]
            defect = 'reason="defect"' in rule["expr"]
            assert defect or 'reason!="defect"' in rule["expr"], rule["alert"]
            assert rule["labels"]["severity"] == ("critical" if defect else "warning")
    assert severities == {
        "LoyalNestDeadLetterDefects": "critical",
        "LoyalNestDeadLettersGrowing": "warning",
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="loyalnest-flows"} == 0', {"up"}),
        ('absent(up{job="a"})', {"up"}),
        (
            'sum by (flow, le) (rate(x_bucket{route="/v1/{id}", flow=~"$flow"}[5m]))'
            " / y offset 10m",
            {"x_bucket", "y"},
        ),
        (
            'label_replace(increase(a_total[5m]), "sink", "mongo", "", "") or b > 1e3',
            {"a_total", "b"},
        ),
        ("sum(rate(c[1m])) by (route) unless on (route) d", {"c", "d"}),
    ],
)
def test_metric_names_reads_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_label_readers_read_promql() -> None:
    expr = (
        'sum by (flow, le) (rate(x_bucket{route="/v1/{id}", flow=~"$flow"}[5m]))'
        ' / on (flow) group_left (sink) y{reason!="a,b"} unless z'
    )

    assert grouping_labels(expr) == {"flow", "le", "sink"}
    assert matcher_labels(expr) == {"x_bucket": {"route", "flow"}, "y": {"reason"}}
    assert reason_values(expr) == {"a,b"}


def test_exported_series_follow_prometheus_client_naming() -> None:
    exported = exported_series()

    # A Counter declared as x_total; a Histogram; a Gauge of Bytewax's; a labelled Counter.
    assert "loyalnest_sink_retries_total" in exported
    assert "loyalnest_sink_retries" not in exported
    assert exported["loyalnest_http_request_duration_seconds_bucket"] == {
        "method",
        "route",
        "status",
        "le",
    }
    assert exported["loyalnest_http_request_duration_seconds_count"] == {
        "method",
        "route",
        "status",
    }
    assert exported["bytewax_kafka_consumer_lag"] == {"step_id", "topic", "partition"}
    assert exported["loyalnest_dead_letters_total"] == {"flow", "step", "reason"}
    assert unknown_metrics_and_labels("sum by (collection) (loyalnest_sink_retries_total)") == [
        "label collection of loyalnest_sink_retries_total"
    ]
    assert unknown_metrics_and_labels('loyalnest_consumer_lag{topic="t"}') == [
        "metric loyalnest_consumer_lag"
    ]


# ---------------------------------------------------------------------------- scrape config


def test_scrape_targets_follow_the_registry_and_settings() -> None:
    """One flow target per registered flow at FLOW_API_PORT + port_offset, labelled with the
    flow's name, and one per round job with a health port likewise; the API at API_HTTP_PORT.
    (Defaults: compose's Prometheus scrapes them.)"""
    jobs = {job["job_name"]: job for job in load_yaml(CONFIG)["scrape_configs"]}
    flow_port = Settings.model_fields["flow_api_port"].default
    api_port = Settings.model_fields["api_http_port"].default
    flows = {
        group["labels"]["flow"]: group["targets"]
        for group in jobs["loyalnest-flows"]["static_configs"]
    }

    assert flows == {
        job.name: [f"127.0.0.1:{flow_port + job.port_offset}"]
        for job in registry.flows()
        if job.port_offset is not None
    }
    rounds = {
        group["labels"]["round"]: group["targets"]
        for group in jobs["loyalnest-rounds"]["static_configs"]
    }
    assert rounds == {
        job.name: [f"127.0.0.1:{flow_port + job.port_offset}"]
        for job in registry.JOBS
        if job.kind is registry.Kind.MODULE and job.port_offset is not None
    }
    assert [group["targets"] for group in jobs["loyalnest-api"]["static_configs"]] == [
        [f"127.0.0.1:{api_port}"]
    ]
    assert load_yaml(CONFIG)["rule_files"] == [ALERTS.name]


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_panels_query_the_provisioned_prometheus() -> None:
    board = dashboard()
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    uid = datasources["datasources"][0]["uid"]

    assert board["uid"] == "loyalnest"
    assert board["title"]
    assert board["schemaVersion"] >= 36
    assert board["panels"]
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids), "panel ids must be unique"


def test_dashboard_uses_only_exported_metrics_and_labels() -> None:
    for expr in panel_exprs():
        assert metric_names(expr), f"no metric found in {expr!r}"
        assert unknown_metrics_and_labels(expr) == [], expr


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("consumer lag by flow", r"max by \(flow\) \(bytewax_kafka_consumer_lag"),
        (
            "consumer lag by flow, topic and partition",
            r"by \((?=[^)]*\bflow\b)(?=[^)]*\btopic\b)(?=[^)]*\bpartition\b)[^)]*\) "
            r"\(bytewax_kafka_consumer_lag",
        ),
        ("order age", r"loyalnest_order_age_seconds"),
        ("dead letters by reason", r"by \([^)]*\breason\b[^)]*\) \(\w+\(loyalnest_dead_letters"),
        ("sink retries by sink", r"by \([^)]*\bsink\b[^)]*\) \(rate\(loyalnest_sink_retries_total"),
        ("batch size p50", r"histogram_quantile\(0\.5, .*loyalnest_mongo_sink_batch_size_bucket"),
        ("batch size p99", r"histogram_quantile\(0\.99, .*loyalnest_mongo_sink_batch_size_bucket"),
        (
            "API latency p50 by route",
            r"histogram_quantile\(0\.5, sum by \(route, le\) \(rate\("
            r"loyalnest_http_request_duration_seconds_bucket",
        ),
        (
            "API latency p99 by route",
            r"histogram_quantile\(0\.99, sum by \(route, le\) \(rate\("
            r"loyalnest_http_request_duration_seconds_bucket",
        ),
        ("API 5xx rate", r'loyalnest_http_request_duration_seconds_count\{status=~"5\.\."\}'),
        ("flows up", r'up\{job="loyalnest-flows"'),
    ],
)
def test_dashboard_covers(what: str, pattern: str) -> None:
    assert any(re.search(pattern, expr) for expr in panel_exprs()), f"no panel shows {what}"


# ---------------------------------------------------------------------------- compose


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_compose_service_is_pinned_on_host_network_and_mounts_what_exists(name: str) -> None:
    service = compose_service(name)
    image, _, tag = service["image"].partition(":")

    assert tag not in {"", "latest"}, f"{name}: pin the image version"
    assert image in {"prom/prometheus", "grafana/grafana"}
    assert service["network_mode"] == "host"
    assert mounts(service), f"{name} mounts nothing from deploy/"
    for source in mounts(service).values():
        assert source.exists(), source
        assert source.is_relative_to(DEPLOY), source


def test_compose_prometheus_loads_this_config_on_loopback() -> None:
    service = compose_service("prometheus")
    args = dict(arg.split("=", 1) for arg in service["command"] if "=" in arg)

    assert args["--web.listen-address"] == "127.0.0.1:9090"
    assert host_path(service, args["--config.file"]) == CONFIG
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert datasources["datasources"][0]["url"] == "http://127.0.0.1:9090"


def test_compose_grafana_provisions_the_dashboard() -> None:
    service = compose_service("grafana")
    env = service["environment"]
    provisioning = host_path(service, env["GF_PATHS_PROVISIONING"])
    providers = load_yaml(provisioning / "dashboards" / "loyalnest.yml")["providers"]

    assert env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert str(env["GF_SERVER_HTTP_PORT"]) == "3000"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert (provisioning / "datasources" / "prometheus.yml").is_file()
    assert [host_path(service, p["options"]["path"]) for p in providers] == [GRAFANA]
    assert DASHBOARD.parent == GRAFANA
