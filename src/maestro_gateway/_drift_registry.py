"""The registry against its audit trail: every row must follow from audited changes.

``RegistryService`` audits, for each change, the intent (``registry.register.requested`` with
the card hash, URLs, protocol, signature and owner; ``registry.transition.requested``) before
making it, then one ``registry.<action>`` record per registry event (agent, version, actor,
time, hashes before and after). From those records alone this module rebuilds what the tables
must hold and reports every difference:

- each stored event must be an audited one and each audited event must still be stored;
- each version row must have an audited ``register`` event whose card hash matches both the
  stored hash column and the hash recomputed from the stored card, with the URLs, protocol,
  signature, author and time of the audited intent;
- replaying the stored, audited events in order gives each version's state and each agent's
  state, active and latest version, which must be the stored ones.

Audited events may appear twice (two concurrent changes to one agent can both audit the
other's event), so they are compared as a set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maestro_gateway._drift_finding import Finding, Severity, finding
from maestro_gateway.registry.cards import card_sha256
from maestro_gateway.registry.models import InvalidCard

ACTIONS = ("register", "activate", "supersede", "suspend", "resume", "reject", "retire")
# action -> (new state of the version, new state of the agent or None)
_EFFECT: dict[str, tuple[str, str | None]] = {
    "register": ("pending", None),
    "activate": ("active", "active"),
    "supersede": ("retired", None),
    "suspend": ("suspended", "suspended"),
    "resume": ("active", "active"),
    "reject": ("retired", None),
    "retire": ("retired", "retired"),
}
_VERSION_FIELDS = ("upstream_url", "source_url", "protocol_version", "signed", "signature_kid")
EventKey = tuple[str, int, str, str, datetime, str | None, str | None]


@dataclass
class _Audited:
    """The audited history of one agent."""

    events: dict[EventKey, int] = field(default_factory=dict)  # event -> first audit seq
    intents: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def compare(
    rows: Mapping[str, list[dict[str, Any]]], records: Iterable[tuple[int, dict[str, Any]]]
) -> list[Finding]:
    """Findings for the registry ``rows`` (``table_rows()``) against the audit ``records``."""
    audited: dict[str, _Audited] = defaultdict(_Audited)
    for seq, record in records:
        kind, agent = record.get("type"), record.get("agent")
        if not isinstance(agent, str):
            continue
        if kind == "registry.register.requested":
            audited[agent].intents.append((seq, record))
        elif isinstance(kind, str) and kind.removeprefix("registry.") in ACTIONS:
            key = _audit_key(record)
            if key is not None:
                audited[agent].events.setdefault(key, seq)
    findings: list[Finding] = []
    agents, versions, events = _group(rows, findings)
    for agent_id in sorted(set(agents) | set(versions) | set(events) | set(audited)):
        history = audited.get(agent_id, _Audited())
        findings += _agent(
            agent_id, agents.get(agent_id), versions.get(agent_id, {}),
            events.get(agent_id, []), history,
        )  # fmt: skip
    return findings


def _audit_key(record: Mapping[str, Any]) -> EventKey | None:
    try:
        return (
            str(record["agent"]), int(record["version"]),
            str(record["type"]).removeprefix("registry."), str(record["actor"]),
            _ts(record["at"]), record.get("before_sha256"), record.get("after_sha256"),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None


def _group(
    rows: Mapping[str, list[dict[str, Any]]], findings: list[Finding]
) -> tuple[
    dict[str, dict[str, Any]], dict[str, dict[int, dict[str, Any]]], dict[str, list[EventKey]]
]:
    agents = {str(r["agent_id"]): r for r in rows["agents"]}
    versions: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows["versions"]:
        versions[str(row["agent_id"])][int(row["version"])] = row
    events: dict[str, list[EventKey]] = defaultdict(list)
    for row in rows["events"]:  # ordered by id: the order the changes were made
        try:
            key: EventKey = (
                str(row["agent_id"]), int(row["version"]), str(row["action"]), str(row["actor"]),
                _ts(row["at"]), row["before_sha256"], row["after_sha256"],
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            findings.append(
                finding("registry.row_invalid", "high", str(row.get("agent_id")),
                        table="registry_events", id=row.get("id"), error=str(exc))
            )  # fmt: skip
            continue
        events[key[0]].append(key)
    return agents, versions, events


def _agent(
    agent_id: str,
    agent: dict[str, Any] | None,
    versions: dict[int, dict[str, Any]],
    stored: list[EventKey],
    audited: _Audited,
) -> list[Finding]:
    registered = {k[1]: (k, seq) for k, seq in audited.events.items() if k[2] == "register"}
    if agent is not None and not registered:
        return [
            finding("registry.agent_unaudited", "critical", agent_id,
                    state=agent.get("state"), versions=sorted(versions),
                    upstream_urls=sorted({str(v.get("upstream_url")) for v in versions.values()}),
                    audited_records=len(audited.events) + len(audited.intents))
        ]  # fmt: skip
    if agent is None:
        return [
            finding("registry.agent_missing", "high", agent_id,
                    audited_versions=sorted(registered), stored_versions=sorted(versions),
                    stored_events=len(stored))
        ]  # fmt: skip
    out: list[Finding] = []
    stored_set = set(stored)
    for key in stored:
        if key not in audited.events:
            out.append(finding("registry.event_unaudited", "high", agent_id, event=_event(key)))
    for key, seq in sorted(audited.events.items(), key=lambda item: item[1]):
        if key not in stored_set:
            out.append(
                finding(
                    "registry.event_missing", "high", agent_id, event=_event(key), audit_seq=seq
                )
            )
    for number, row in sorted(versions.items()):
        if number not in registered:
            out.append(
                finding("registry.version_unaudited", "critical", agent_id, version=number,
                        card_sha256=row.get("card_sha256"), upstream_url=row.get("upstream_url"),
                        state=row.get("state"))
            )  # fmt: skip
            continue
        out += _version(agent_id, number, row, *registered[number], audited.intents)
    for number in sorted(set(registered) - set(versions)):
        out.append(
            finding("registry.version_missing", "high", agent_id, version=number,
                    audit_seq=registered[number][1], card_sha256=registered[number][0][6])
        )  # fmt: skip
    out += _agent_row(agent_id, agent, registered, audited.intents)
    out += _states(agent_id, agent, versions, [k for k in stored if k in audited.events])
    return out


def _version(
    agent_id: str,
    number: int,
    row: Mapping[str, Any],
    event: EventKey,
    seq: int,
    intents: list[tuple[int, dict[str, Any]]],
) -> list[Finding]:
    audited_sha = event[6]
    try:
        recomputed: str | None = card_sha256(json.loads(row["card"]))
    except (TypeError, ValueError, InvalidCard):
        recomputed = None
    if row.get("card_sha256") != audited_sha or recomputed != audited_sha:
        return [
            finding("registry.card_mismatch", "critical", agent_id, version=number,
                    audited_sha256=audited_sha, stored_sha256=row.get("card_sha256"),
                    stored_card_sha256=recomputed, audit_seq=seq)
        ]  # fmt: skip
    expected: dict[str, Any] = {"created_by": event[3], "created_at": event[4]}
    intent = _intent(intents, event, seq)
    if intent is not None:
        expected.update({f: intent[f] for f in _VERSION_FIELDS if f in intent})
    actual = {f: row.get(f) for f in expected}
    if "signed" in actual:
        actual["signed"] = bool(actual["signed"])  # SQLite stores 0/1
    diffs = _diffs(expected, {**actual, "created_at": _maybe_ts(row.get("created_at"))})
    if not diffs:
        return []
    severity: Severity = "critical" if "upstream_url" in diffs else "high"
    return [finding("registry.version_mismatch", severity, agent_id, version=number, fields=diffs)]


def _agent_row(
    agent_id: str,
    agent: Mapping[str, Any],
    registered: Mapping[int, tuple[EventKey, int]],
    intents: list[tuple[int, dict[str, Any]]],
) -> list[Finding]:
    event, seq = registered[min(registered)]
    expected: dict[str, Any] = {"created_at": event[4]}
    intent = _intent(intents, event, seq)
    if intent is not None:
        expected.update({f: intent[f] for f in ("owner", "tenant") if f in intent})
    actual = {f: agent.get(f) for f in expected}
    diffs = _diffs(expected, {**actual, "created_at": _maybe_ts(agent.get("created_at"))})
    return [finding("registry.agent_mismatch", "high", agent_id, fields=diffs)] if diffs else []


def _states(
    agent_id: str,
    agent: Mapping[str, Any],
    versions: Mapping[int, Mapping[str, Any]],
    events: list[EventKey],
) -> list[Finding]:
    """Replay the audited events in the order they were stored; compare the resulting states."""
    state, active, latest = "pending", None, 0
    version_states: dict[int, str] = {}
    for _, number, action, *_rest in events:
        version_state, agent_state = _EFFECT[action]
        version_states[number] = version_state
        if action == "register":
            latest = max(latest, number)
        if agent_state is not None:
            state = agent_state
        if action == "activate":
            active = number
    expected = {"state": state, "active_version": active, "latest_version": latest}
    actual = {k: agent.get(k) for k in expected}
    diffs = _diffs(expected, actual)
    for number, version_state in sorted(version_states.items()):
        if number in versions and versions[number].get("state") != version_state:
            stored = versions[number].get("state")
            diffs[f"version {number} state"] = {"registry": stored, "audit": version_state}
    if not diffs:
        return []
    live = actual.get("state") == "active" or any(d["registry"] == "active" for d in diffs.values())
    return [
        finding("registry.state_mismatch", "critical" if live else "high", agent_id, fields=diffs)
    ]


def _intent(
    intents: list[tuple[int, dict[str, Any]]], event: EventKey, seq: int
) -> dict[str, Any] | None:
    """The latest registration request before ``event`` for its card by its actor."""
    matching = [
        record
        for at, record in intents
        if at < seq and record.get("card_sha256") == event[6] and record.get("actor") == event[3]
    ]
    return matching[-1] if matching else None


def _diffs(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"registry": _plain(actual.get(name)), "audit": _plain(value)}
        for name, value in expected.items()
        if actual.get(name) != value
    }


def _event(key: EventKey) -> dict[str, Any]:
    _agent, version, action, actor, at, before, after = key
    return {
        "version": version, "action": action, "actor": actor, "at": at.isoformat(),
        "before_sha256": before, "after_sha256": after,
    }  # fmt: skip


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _maybe_ts(value: Any) -> datetime | Any:
    try:
        return _ts(value)
    except (TypeError, ValueError):
        return value


def _ts(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
