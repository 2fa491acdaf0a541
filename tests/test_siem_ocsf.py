"""OCSF 1.3 event builders and the mapping of gateway records onto them."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from maestro_gateway.config import parse_config
from maestro_gateway.siem import SiemConfig, ocsf
from maestro_gateway.siem._mapping import from_audit, from_call
from maestro_gateway.siem.service import SiemService

# Required attributes per class in OCSF 1.3.0 (base event + the class's own).
BASE = {"activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid"}
REQUIRED = {
    3002: BASE | {"user"},
    6003: BASE | {"actor", "api", "src_endpoint"},
    2004: BASE | {"finding_info"},
    3004: BASE | {"entity"},
}


def check(event: dict[str, Any], class_uid: int, category_uid: int) -> None:
    assert REQUIRED[class_uid] <= set(event), REQUIRED[class_uid] - set(event)
    assert (event["class_uid"], event["category_uid"]) == (class_uid, category_uid)
    assert event["type_uid"] == class_uid * 100 + event["activity_id"]
    assert event["metadata"]["version"].startswith("1.")
    assert {"name", "vendor_name"} <= set(event["metadata"]["product"])
    assert len(event["metadata"]["uid"]) == 32
    assert abs(event["time"] - time.time() * 1000) < 60_000
    assert 0 <= event["severity_id"] <= 6
    orjson.dumps(event)  # JSON-serializable as is


def test_authentication_failure_is_a_3002_logon_failure() -> None:
    """A failed token check is Authentication/Logon with status Failure, Medium severity, the
    user, the protocol (OAuth 2.0 = 6) and the source address."""
    e = ocsf.authentication("alice", False, src_ip="10.0.0.5", reason="token expired",
                            is_mfa=False, correlation_uid="r1")  # fmt: skip
    check(e, 3002, 3)
    assert (e["activity_id"], e["status_id"], e["severity_id"]) == (1, 2, 3)
    assert e["user"]["name"] == "alice"
    assert e["auth_protocol_id"] == 6
    assert e["src_endpoint"] == {"ip": "10.0.0.5"}
    assert e["status_detail"] == "token expired"
    assert ocsf.authentication("bob", True)["status_id"] == 1


def test_api_activity_maps_a2a_methods_to_activities() -> None:
    """SendMessage creates, GetTask reads, CancelTask updates; unknown methods are Other."""

    def act(method: str) -> dict[str, Any]:
        return ocsf.api_activity(request_id="r", agent="a", method=method, verdict="allow",
                                 status_code=200, duration_ms=1)  # fmt: skip

    check(act("SendMessage"), 6003, 6)
    assert [act(m)["activity_id"] for m in ("SendMessage", "GetTask", "CancelTask", "X")] == [
        1, 2, 3, 99,
    ]  # fmt: skip


def test_detection_finding_carries_rule_confidence_and_evidence() -> None:
    """A finding names its analytic and rule, its confidence (0-100) and its evidence."""
    e = ocsf.detection_finding(title="burst of denials", analytic="anomaly.denial_burst",
                               confidence=0.82, evidence={"denials": 40, "window_s": 60},
                               blocked=False, principal="mallory")  # fmt: skip
    check(e, 2004, 2)
    assert e["finding_info"]["analytic"]["name"] == "anomaly.denial_burst"
    assert (e["confidence_score"], e["confidence_id"]) == (82, 3)
    assert e["evidences"] == [{"data": {"denials": 40, "window_s": 60}}]
    assert e["disposition"] == "Detected"
    assert e["actor"]["user"]["name"] == "mallory"


def test_audit_guard_denial_maps_to_a_critical_detection_finding() -> None:
    """The record DataPlane._deny writes becomes a critical 2004 with guard and rules."""
    record = {"type": "guard.deny", "request_id": "r9", "agent": "echo", "method": "SendMessage",
              "guard": "waf", "rule": "942100,942180", "reason": "blocked"}  # fmt: skip
    mapped = from_audit(record)
    assert mapped is not None
    event, critical = mapped
    check(event, 2004, 2)
    assert critical
    assert event["metadata"]["correlation_uid"] == "r9"
    assert event["finding_info"]["analytic"] == {
        "name": "waf", "uid": "942100,942180", "type_id": 1, "type": "Rule",
    }  # fmt: skip


def test_registry_change_maps_to_entity_management_with_hashes() -> None:
    """registry.suspend becomes a 3004 Suspend of the agent with actor and before/after hash;
    a change only *requested* is not an event of its own."""
    record = {"type": "registry.suspend", "agent": "echo", "version": 2, "actor": "bob",
              "before_sha256": "aa", "after_sha256": None}  # fmt: skip
    mapped = from_audit(record)
    assert mapped is not None
    event, critical = mapped
    check(event, 3004, 3)
    assert critical
    assert event["activity_name"] == "Suspend"
    assert event["entity"]["data"] == {"sha256": "aa"}
    assert event["actor"]["user"]["name"] == "bob"
    assert from_audit({"type": "registry.transition.requested", "agent": "echo"}) is None
    assert from_audit({"type": "something.else"}) is None


@pytest.mark.parametrize(("kind", "critical"), [("auth.failure", True), ("auth.success", False)])
def test_auth_records_map_to_authentication(kind: str, critical: bool) -> None:
    """Authentication records (from the identity layer) become 3002; failures are critical."""
    mapped = from_audit({"type": kind, "principal": "svc-a", "client_addr": "10.1.1.1"})
    assert mapped is not None
    assert mapped[1] is critical
    check(mapped[0], 3002, 3)


def test_finished_call_maps_to_api_activity() -> None:
    """A finished call becomes a 6003 with operation, agent, status and the client address."""

    class FakeCall:
        request_id, agent, method, verdict, status = "r1", "echo", "GetTask", "allow", 200
        binding, client_version, started = "rest", "0.3", time.perf_counter()

    e = from_call(FakeCall(), "192.0.2.7")
    check(e, 6003, 6)
    assert e["api"]["operation"] == "GetTask"
    assert e["api"]["version"] == "0.3"
    assert e["src_endpoint"] == {"ip": "192.0.2.7"}
    assert e["resources"][0]["uid"] == "echo"


def test_emit_on_a_stopped_service_is_a_cheap_no_op() -> None:
    """Before start (or after close) emit returns False without touching anything."""
    svc = SiemService(SiemConfig())
    assert svc.emit(ocsf.authentication("a", True)) is False
    assert svc.queue_length == 0


def test_behavioural_finding_maps_to_detection_finding_with_confidence() -> None:
    """A detect.finding audit record becomes a critical, not-blocked 2004 whose analytic names
    the detector, with its confidence (High at >= 0.8), evidence and finding id."""
    record = {
        "type": "detect.finding", "id": "f1", "finding_type": "denial_burst",
        "principal": "mallory", "agent": "echo", "source": "10.9.9.9", "token_id": None,
        "confidence": 0.91, "evidence": {"denials": 25, "window_s": 60}, "at": 1.0,
    }  # fmt: skip
    mapped = from_audit(record)
    assert mapped is not None
    event, critical = mapped
    check(event, 2004, 2)
    assert critical
    assert event["finding_info"]["analytic"]["name"] == "anomaly.denial_burst"
    assert event["finding_info"]["uid"] == "f1"
    assert (event["severity_id"], event["confidence_score"]) == (4, 91)
    assert event["evidences"] == [{"data": {"denials": 25, "window_s": 60, "source": "10.9.9.9"}}]
    assert event["disposition"] == "Detected"


def test_docs_config_example_is_valid() -> None:
    """The configuration example in docs/siem.md loads through the gateway's config model."""
    text = (Path(__file__).parent.parent / "docs" / "siem.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    cfg = parse_config(yaml.safe_load(block.group(1)))
    assert cfg.siem.enabled
    assert [e.type for e in cfg.siem.exporters] == ["jsonl", "syslog", "hec", "nats"]
