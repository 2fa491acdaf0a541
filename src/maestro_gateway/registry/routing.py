"""What the data path serves: the active agents, and skill-based routing for `router`.

The directory is an immutable snapshot swapped atomically whenever the registry changes,
so the hot path reads it without locks or I/O.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro_gateway.config import RouteRule

log = logging.getLogger("maestro_gateway.routing")

ROUTER_ID = "router"


@dataclass(frozen=True, slots=True)
class Target:
    """One active agent version the gateway forwards to."""

    agent_id: str
    url: str
    protocol_version: str  # "1.0" or "0.3"
    card: Mapping[str, Any] = field(repr=False, default_factory=dict)
    skills: frozenset[str] = frozenset()
    version: int = 1
    tenant: str | None = None
    expected_spiffe_id: str | None = None  # C12: the SPIFFE ID the agent must present on mTLS


@dataclass(frozen=True, slots=True)
class Route:
    target: Target
    skill_id: str
    reason: str


class Directory:
    """Active agents by id, and by skill."""

    def __init__(self, rules: list[RouteRule] | None = None) -> None:
        self._rules = [(re.compile(r.pattern, re.IGNORECASE), r.skill) for r in rules or []]
        self._targets: dict[str, Target] = {}
        self._by_skill: dict[str, tuple[Target, ...]] = {}
        self._turn = itertools.count()

    def replace(self, targets: Mapping[str, Target]) -> None:
        by_skill: dict[str, list[Target]] = {}
        for target in sorted(targets.values(), key=lambda t: t.agent_id):
            for skill in target.skills:
                by_skill.setdefault(skill, []).append(target)
        # Two assignments, each atomic: a reader sees the old or the new map, never a mix
        # that matters (a skill pointing at a removed agent is re-checked in route()).
        self._by_skill = {k: tuple(v) for k, v in by_skill.items()}
        self._targets = dict(targets)

    def get(self, agent_id: str) -> Target | None:
        return self._targets.get(agent_id)

    def targets(self) -> list[Target]:
        return sorted(self._targets.values(), key=lambda t: t.agent_id)

    def route(self, params: Any) -> Route | None:
        """Pick an active agent for a message sent to the virtual `router` agent."""
        message = params.get("message") if isinstance(params, dict) else None
        if not isinstance(message, dict):
            return None
        metadata = message.get("metadata")
        skill = metadata.get("skillId") if isinstance(metadata, dict) else None
        reason = "metadata.skillId"
        if not isinstance(skill, str):
            skill, reason = self._match_rules(message), "rule"
        if skill is None:
            return None
        offering = self._by_skill.get(skill, ())
        offering = tuple(t for t in offering if self._targets.get(t.agent_id) is t)
        if not offering:
            return None
        target = offering[next(self._turn) % len(offering)]
        return Route(target, skill, reason)

    def _match_rules(self, message: dict[str, Any]) -> str | None:
        if not self._rules:
            return None
        parts = message.get("parts")
        text = " ".join(
            p["text"]
            for p in (parts if isinstance(parts, list) else [])
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
        for pattern, skill in self._rules:
            if pattern.search(text):
                return skill
        return None

    def router_card(self, public_url: str) -> dict[str, Any]:
        """The card of the virtual `router` agent: the skills of all active agents."""
        skills: dict[str, dict[str, Any]] = {}
        streaming = False
        for target in self.targets():
            caps = target.card.get("capabilities") or {}
            streaming = streaming or bool(caps.get("streaming"))
            for skill in target.card.get("skills") or []:
                skills.setdefault(skill["id"], dict(skill))
        base = f"{public_url.rstrip('/')}/agents/{ROUTER_ID}"
        return {
            "name": "Maestro Gateway skill router",
            "description": "Routes each message to an active agent offering the requested skill "
            "(message.metadata.skillId, or a configured routing rule).",
            "supportedInterfaces": [
                {"url": base, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": f"{base}/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
            ],
            "version": "1.0.0",
            "capabilities": {"streaming": streaming},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [skills[k] for k in sorted(skills)],
        }
