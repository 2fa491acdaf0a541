"""Registry values: agent states, versions, records, events, and the errors the registry raises.

Lifecycle
---------
An *agent* (one ``agent_id``) owns numbered *versions*; each version is one agent card as
received (and verified), with the upstream it was registered for. Both agents and versions move
through the same state machine::

    pending ──► active ◄──► suspended
       │          │             │
       └──────────┴──► retired ◄┘          (retired is final)

A new card never replaces what is serving: registering it creates version ``latest + 1`` in
``pending`` while the agent's active version keeps serving, like a deployment waiting for
approval. Activating the pending version makes it the agent's ``active_version`` and retires the
version it replaces (``supersede``); there is no rollback, re-register the old card instead.
The active version's state *is* the agent's state: suspending, resuming or retiring the agent acts
on it, and retiring the agent retires every version. A pending version can be refused by moving it
to ``retired`` (``reject``) without touching what serves.

Errors
------
::

    A2AError
     └── RegistryError
          ├── InvalidCard        the card is not an acceptable A2A agent card (400)
          ├── InvalidArgument    another argument is malformed (400)
          ├── NotFound           no such agent or version (404)
          ├── InvalidTransition  the state machine forbids the change (409)
          └── Conflict           the change contradicts what is stored (409)
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from maestro_gateway.a2a.errors import INVALID_PARAMS, METHOD_NOT_FOUND, A2AError

ProtocolVersion = Literal["1.0", "0.3"]
PROTOCOL_VERSIONS: tuple[ProtocolVersion, ...] = ("1.0", "0.3")

AGENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Agent ids appear in gateway URLs (``/agents/{agent_id}``), so they are kept URL-safe."""


class AgentState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"

    def can_become(self, new: AgentState) -> bool:
        """Whether the state machine allows ``self → new``."""
        return new in _TRANSITIONS[self]


_TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    AgentState.PENDING: frozenset({AgentState.ACTIVE, AgentState.RETIRED}),
    AgentState.ACTIVE: frozenset({AgentState.SUSPENDED, AgentState.RETIRED}),
    AgentState.SUSPENDED: frozenset({AgentState.ACTIVE, AgentState.RETIRED}),
    AgentState.RETIRED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class AgentVersion:
    """One registered card of an agent.

    ``card`` is the verified original exactly as received (signatures included);
    ``card_sha256`` is the SHA-256 of its RFC 8785 canonical form. ``upstream_url`` is where the
    gateway forwards JSON-RPC for this version, speaking ``protocol_version``.
    """

    agent_id: str
    version: int
    card: dict[str, Any]
    card_sha256: str
    source_url: str | None
    upstream_url: str
    protocol_version: ProtocolVersion
    state: AgentState
    created_by: str
    created_at: datetime
    signed: bool
    signature_kid: str | None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent: its state, the version that serves (or served) and who it belongs to.

    ``owner``, ``tenant`` and ``expected_spiffe_id`` are fixed when the agent is created.
    """

    agent_id: str
    active_version: int | None
    latest_version: int
    state: AgentState
    owner: str | None
    tenant: str | None
    expected_spiffe_id: str | None


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One change, with who made it and when.

    ``register``: ``before_sha256`` is the hash of the previous latest version's card (``None``
    for the first) and ``after_sha256`` the new card's. State changes (``activate``, ``supersede``,
    ``suspend``, ``resume``, ``reject``, ``retire``; one event per version that changes state):
    the hashes of the card the agent *served* before and after the change (``None`` when it served
    nothing, e.g. after a suspension).
    """

    agent_id: str
    version: int
    action: str
    actor: str
    at: datetime
    before_sha256: str | None
    after_sha256: str | None


class RegistryError(A2AError):
    """A registry operation was refused; ``str(err)`` is the message."""

    _CODE: ClassVar[int] = INVALID_PARAMS
    _HTTP: ClassVar[int] = 400
    _REASON: ClassVar[str] = "REGISTRY_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(self._CODE, message, self._HTTP, reason=self._REASON)


class InvalidCard(RegistryError):
    _REASON = "INVALID_AGENT_CARD"


class InvalidArgument(RegistryError):
    _REASON = "INVALID_ARGUMENT"


class NotFound(RegistryError):
    _CODE = METHOD_NOT_FOUND
    _HTTP = 404
    _REASON = "NOT_FOUND"


class InvalidTransition(RegistryError):
    _HTTP = 409
    _REASON = "INVALID_TRANSITION"


class Conflict(RegistryError):
    _HTTP = 409
    _REASON = "CONFLICT"


class RegistryUnavailable(RegistryError):
    """The change cannot be made safely now (e.g. the audit log cannot record it)."""

    _HTTP = 503
    _REASON = "REGISTRY_UNAVAILABLE"
