"""The compose gateway, the local nginx gateway and the ALB listener rules all come from
the route table, and agree: same path patterns per service, same priority order, same ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from duochat_common import gateway
from duochat_common.routing import INTERNAL_PATHS, INTERNAL_PRIORITY, ROUTES, WEB_PORT, WEB_SERVICE

from .conftest import Synthesized
from .test_stack import props, ref_id

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[3]
Rules = list[tuple[str, list[str]]]  # (service, path patterns) in the order they are tried


def nginx_rules(conf: str) -> tuple[Rules, dict[str, list[str]], dict[str, list[str]]]:
    """(path rules as regexes, SSE locations, upstream addresses) by service, in file order."""
    upstreams: dict[str, list[str]] = {}
    current = None
    for line in conf.splitlines():
        if m := re.match(r"\s*upstream duochat_(\w+) \{", line):
            current = m.group(1)
            upstreams[current] = []
        elif current and (m := re.match(r"\s*server (\S+);", line)):
            upstreams[current].append(m.group(1))
        elif line.strip() == "}":
            current = None
    rules: Rules = []
    sse: dict[str, list[str]] = {}
    for block in re.findall(r'location ~ "([^"]+)" \{(.*?)\n\s*\}', conf, flags=re.S):
        regex, body = block
        proxied = re.search(r"proxy_pass http://duochat_(\w+);", body)
        if not proxied:
            continue  # the static /assets/ location
        service = proxied.group(1)
        if "proxy_buffering off;" in body:
            sse.setdefault(service, []).append(regex)
        elif rules and rules[-1][0] == service:
            rules[-1][1].append(regex)
        else:
            rules.append((service, [regex]))
    return rules, sse, upstreams


def alb_rules(template: dict[str, Any]) -> tuple[list[tuple[int, str, list[str]]], dict[str, int]]:
    """(priority, service, patterns) sorted by priority, and each service's target port."""
    group_service: dict[str, str] = {}
    for service in props(template, "AWS::ECS::Service"):
        (lb,) = service["LoadBalancers"]
        group_service[ref_id(lb["TargetGroupArn"])] = lb["ContainerName"]
    groups = {
        logical: resource["Properties"]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
    }
    rules = []
    for rule in props(template, "AWS::ElasticLoadBalancingV2::ListenerRule"):
        if rule["Actions"][0]["Type"] != "forward":
            continue  # the internal paths' 404 (test_internal_paths_are_refused_everywhere)
        (condition,) = rule["Conditions"]
        group = ref_id(rule["Actions"][0]["TargetGroupArn"])
        rules.append(
            (rule["Priority"], group_service[group], condition["PathPatternConfig"]["Values"])
        )
    ports = {group_service[g]: p["Port"] for g, p in groups.items()}
    return sorted(rules), ports


def as_regexes(rules: list[tuple[int, str, list[str]]]) -> Rules:
    return [
        (service, [gateway.alb_pattern_to_regex(p) for p in pats]) for _, service, pats in rules
    ]


@pytest.fixture(scope="module")
def confs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("gw")
    return {
        "compose": (REPO / gateway.COMPOSE_CONF).read_text(),
        "local": gateway.local_conf(static_root=str(tmp / "dist"), run_dir=str(tmp)),
    }


def test_alb_rules_are_the_route_table(synthesized: Synthesized, env: str) -> None:
    rules, ports = alb_rules(synthesized.json(env))
    ordered = sorted(ROUTES, key=lambda r: r.priority)
    assert rules == [(r.priority, r.service, list(r.paths)) for r in ordered]
    assert ports == {**{r.service: r.port for r in ROUTES}, WEB_SERVICE: WEB_PORT}


@pytest.mark.parametrize("mode", ["compose", "local"])
def test_nginx_gateways_agree_with_the_alb(
    synthesized: Synthesized, confs: dict[str, str], mode: str
) -> None:
    rules, ports = alb_rules(synthesized.json("dev"))
    nginx, sse, upstreams = nginx_rules(confs[mode])
    # Same services in the same priority order, each with the same path patterns.
    assert nginx == as_regexes(rules)
    # Each upstream is the service on the port its target group sends to.
    for service, port in ports.items():
        if service == WEB_SERVICE and mode == "local":
            assert service not in upstreams  # served from web/dist
            continue
        host = service if mode == "compose" else "127.0.0.1"
        assert upstreams[service] == [f"{host}:{port}"]
    # SSE streams are unbuffered, and inside their own service's ALB patterns.
    assert sse == {
        r.service: [gateway.alb_pattern_to_regex(p) for p in r.sse_paths]
        for r in ROUTES
        if r.sse_paths
    }


def test_the_two_nginx_gateways_differ_only_in_where_things_run(confs: dict[str, str]) -> None:
    compose_rules, compose_sse, _ = nginx_rules(confs["compose"])
    local_rules, local_sse, _ = nginx_rules(confs["local"])
    assert compose_rules == local_rules and compose_sse == local_sse


def test_internal_paths_are_refused_everywhere(
    synthesized: Synthesized, confs: dict[str, str], env: str
) -> None:
    """/metrics answers on each task's own port, and 404 through the ALB and both gateways."""
    (rule,) = [
        r
        for r in props(synthesized.json(env), "AWS::ElasticLoadBalancingV2::ListenerRule")
        if r["Actions"][0]["Type"] == "fixed-response"
    ]
    assert rule["Priority"] == INTERNAL_PRIORITY < min(r.priority for r in ROUTES)
    assert rule["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": list(INTERNAL_PATHS)}}
    ]
    assert rule["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    for conf in confs.values():
        for path in INTERNAL_PATHS:
            assert f"location = {path} {{ return 404; }}" in conf
