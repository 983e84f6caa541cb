"""`deploy/connector-alerts.yml` against the code: every expression parses as PromQL and
asks only for series and labels the connector exposes, so a renamed metric or label fails
here instead of silencing an alert in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.metrics_core import Metric

from connector.metrics import JOB_STATES, JOBS, Metrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "connector-alerts.yml"
SEVERITIES = {"critical", "warning", "info"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
#: Prometheus's own series an alert may use, with their labels.
_PROMETHEUS = {"up": {"job", "instance"}}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _exposed() -> dict[str, set[str]]:
    """Every sample name /metrics can show, with the labels it carries."""
    names: dict[str, set[str]] = dict(_PROMETHEUS)
    family: Metric
    for family in Metrics().registry.collect():
        labels = set(_labelnames(family.name))
        for suffix in _SUFFIXES[family.type]:
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def _labelnames(family: str) -> tuple[str, ...]:
    metrics = Metrics()
    for value in vars(metrics).values():
        if getattr(value, "_name", None) in (family, family.removesuffix("_total")):
            return tuple(value._labelnames)
    raise AssertionError(f"no metric object for family {family}")


def _selectors(node: Any) -> Iterator[Any]:
    """Every vector selector in a parsed expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    for attribute in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield from _selectors(child)
    for arg in getattr(node, "args", None) or ():
        yield from _selectors(arg)


@pytest.fixture(scope="module")
def exposed() -> dict[str, set[str]]:
    return _exposed()


def _problems(rule: dict[str, Any], exposed: dict[str, set[str]]) -> list[str]:
    """What is wrong with one rule's expression against the exposed series ([] if nothing)."""
    selectors = list(_selectors(promql_parser.parse(rule["expr"])))  # raises on bad syntax
    problems = [] if selectors else ["an alert with no series never fires"]
    used: set[str] = set()
    for selector in selectors:
        if selector.name not in exposed:
            problems.append(f"{selector.name} is not exposed by /metrics")
            continue
        labels = exposed[selector.name]
        asked = {m.name: m.value for m in selector.matchers.matchers}
        problems += [f"{selector.name} has no label {name}" for name in asked if name not in labels]
        used |= labels
        if selector.name == "connector_job_state" and not (
            asked.get("name") in JOBS and asked.get("state") in JOB_STATES
        ):
            problems.append(f"no such job or state: {asked}")
    annotations = " ".join(rule["annotations"].values())
    problems += [
        f"the annotation uses {label}, which the series do not carry"
        for label in re.findall(r"\$labels\.(\w+)", annotations)
        if label not in used
    ]
    return problems


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_each_alert_asks_for_series_the_connector_exposes(
    rule: dict[str, Any], exposed: dict[str, set[str]]
) -> None:
    assert _problems(rule, exposed) == []


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_each_alert_has_a_severity_and_says_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip()
    assert "`" in rule["annotations"]["description"]  # names a command or status field
    if "for" in rule:
        promql_parser.parse_duration(rule["for"])


def test_a_rule_the_connector_cannot_answer_is_caught(exposed: dict[str, set[str]]) -> None:
    """The check itself: a renamed series, a misspelt label, a job that does not exist and
    an annotation naming a label the series lack are each reported."""
    rule = {
        "expr": 'connector_job_status{name="pull"} == 1 or connector_job_state{nam="pull"} == 1'
        ' or connector_job_state{name="pulling", state="ok"} == 1',
        "annotations": {"summary": "{{ $labels.stream }}"},
    }
    problems = _problems(rule, exposed)
    assert problems == [
        "connector_job_status is not exposed by /metrics",
        "connector_job_state has no label nam",
        "no such job or state: {'nam': 'pull'}",
        "no such job or state: {'name': 'pulling', 'state': 'ok'}",
        "the annotation uses stream, which the series do not carry",
    ]
