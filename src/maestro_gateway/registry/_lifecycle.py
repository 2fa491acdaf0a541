"""The registry's state machine as a pure function: what a transition changes, or why not.

See :mod:`maestro_gateway.registry.models` for the lifecycle this implements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from maestro_gateway.registry.models import AgentRecord, AgentState, InvalidTransition

ACTIVE, PENDING, RETIRED, SUSPENDED = (
    AgentState.ACTIVE,
    AgentState.PENDING,
    AgentState.RETIRED,
    AgentState.SUSPENDED,
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The agent's new state and active version, and each version that changes state."""

    state: AgentState
    active_version: int | None
    changes: tuple[tuple[int, AgentState, str], ...]  # (version, new state, event action)


def plan_transition(
    record: AgentRecord,
    versions: Mapping[int, AgentState],
    version: int | None,
    new: AgentState,
) -> Plan:
    """Plan ``record`` (whose versions are in ``versions``) moving ``version`` to ``new``.

    ``version=None``, or the active version, means the agent itself. Raises InvalidTransition.
    """
    name = f"agent {record.agent_id!r}"
    if record.state is RETIRED:
        raise InvalidTransition(f"{name} is retired, which is final")
    if version is None or version == record.active_version:
        return _agent_level(record, versions, new, name)
    current = versions[version]
    if not current.can_become(new):
        raise InvalidTransition(
            f"version {version} of {name} is {current.value} and cannot become {new.value}"
        )
    if new is RETIRED:
        return Plan(record.state, record.active_version, ((version, RETIRED, "reject"),))
    # pending → active: deploy this version; the one it replaces is retired.
    changes: tuple[tuple[int, AgentState, str], ...] = ((version, ACTIVE, "activate"),)
    if record.active_version is not None:
        changes = ((record.active_version, RETIRED, "supersede"), *changes)
    return Plan(ACTIVE, version, changes)


def _agent_level(
    record: AgentRecord, versions: Mapping[int, AgentState], new: AgentState, name: str
) -> Plan:
    if not record.state.can_become(new):
        hint = "; name the pending version to deploy it" if new is record.state is ACTIVE else ""
        raise InvalidTransition(
            f"{name} is {record.state.value} and cannot become {new.value}{hint}"
        )
    if new is RETIRED:
        live = tuple(
            (v, RETIRED, "retire") for v, s in sorted(versions.items()) if s is not RETIRED
        )
        return Plan(RETIRED, record.active_version, live)
    if record.state is PENDING:
        latest = record.latest_version
        if versions.get(latest) is not PENDING:
            raise InvalidTransition(f"{name} has no pending latest version to activate")
        return Plan(ACTIVE, latest, ((latest, ACTIVE, "activate"),))
    if record.active_version is None:  # cannot happen: active and suspended agents have one
        raise InvalidTransition(f"{name} has no active version")
    action = "suspend" if new is SUSPENDED else "resume"
    return Plan(new, record.active_version, ((record.active_version, new, action),))
