"""The registry store: one behaviour suite run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from maestro_gateway.registry import (
    AgentState,
    Conflict,
    InvalidArgument,
    InvalidCard,
    InvalidTransition,
    NotFound,
    RegistryStore,
    card_sha256,
    open_store,
)
from tests.services import unavailable

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
ACTIVE, PENDING, SUSPENDED, RETIRED = (
    AgentState.ACTIVE,
    AgentState.PENDING,
    AgentState.SUSPENDED,
    AgentState.RETIRED,
)


class FakeClock:
    """Starts at 2026-01-01T00:00Z and advances one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Backend:
    """How to open the store under test, and how to make its event table refuse writes."""

    url: str
    break_events: Callable[[], Awaitable[None]]


def card(version: str = "1", url: str = "https://agent.example/a2a") -> dict[str, Any]:
    return {
        "name": "Recipe agent",
        "description": f"Recipes, release {version}.",
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "version": version,
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "cook", "name": "Cook", "description": "Cooks.", "tags": ["food"]}],
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "registry.db"

        async def break_sqlite() -> None:
            with sqlite3.connect(path) as db:
                db.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON registry_events "
                    "BEGIN SELECT RAISE(ABORT, 'event table refuses writes'); END"
                )

        yield Backend(f"sqlite:///{path}", break_sqlite)
        return
    schema = f"test_registry_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_SERVER)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")

    async def break_postgres() -> None:
        await admin.execute(
            f"""CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION 'event table refuses writes'; END $$;
                CREATE TRIGGER refuse BEFORE INSERT ON {schema}.registry_events
                FOR EACH ROW EXECUTE FUNCTION {schema}.refuse();"""
        )

    try:
        yield Backend(f"{PG_SERVER}?schema={schema}", break_postgres)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(backend: Backend, clock: FakeClock) -> AsyncIterator[RegistryStore]:
    opened = open_store(backend.url, clock=clock)
    await opened.init()
    try:
        yield opened
    finally:
        await opened.close()


async def register(store: RegistryStore, agent_id: str = "recipes", **kw: Any) -> Any:
    args: dict[str, Any] = {
        "actor": "alice",
        "upstream_url": "https://agent.example/a2a",
        "protocol_version": "1.0",
        "signed": False,
        "signature_kid": None,
    }
    args.update(kw)
    the_card = args.pop("card", None) or card(args.pop("release", "1"))
    return await store.register(agent_id, the_card, **args)


async def test_first_registration_creates_a_pending_agent(
    store: RegistryStore, clock: FakeClock
) -> None:
    """Registering a new id creates version 1 and the agent, both pending, with who and when."""
    v1 = await register(store, owner="team-a", tenant="t1", source_url="https://agent.example/card")
    assert (v1.version, v1.state, v1.created_by, v1.created_at) == (1, PENDING, "alice", clock.now)
    assert v1.card == card("1")
    assert v1.card_sha256 == card_sha256(card("1"))
    record = await store.get("recipes")
    assert record is not None
    assert (record.state, record.active_version, record.latest_version) == (PENDING, None, 1)
    assert (record.owner, record.tenant) == ("team-a", "t1")
    assert await store.get_version("recipes", 1) == v1


async def test_versions_increase_and_keep_who_and_when(store: RegistryStore) -> None:
    """Each new card is the next version number, and every version keeps its own author and time."""
    v1 = await register(store, release="1", actor="alice")
    v2 = await register(store, release="2", actor="bob")
    v3 = await register(store, release="3", actor="carol")
    versions = await store.versions("recipes")
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.created_by for v in versions] == ["alice", "bob", "carol"]
    assert v1.created_at < v2.created_at < v3.created_at
    assert versions == [v1, v2, v3]
    record = await store.get("recipes")
    assert record is not None
    assert record.latest_version == 3


async def test_registering_the_same_card_again_is_not_a_new_version(store: RegistryStore) -> None:
    """Re-registering the latest card and upstream returns that version and records nothing."""
    v1 = await register(store)
    events = await store.events("recipes")
    assert await register(store, actor="bob") == v1
    assert await store.events("recipes") == events


async def test_lifecycle_transitions_are_applied(store: RegistryStore) -> None:
    """pending → active → suspended → active → retired, with the active version following."""
    await register(store)
    for state in (ACTIVE, SUSPENDED, ACTIVE):
        record = await store.transition("recipes", None, state, actor="ops")
        assert (record.state, record.active_version) == (state, 1)
        assert (await store.get_version("recipes", 1)).state is state  # type: ignore[union-attr]
    await register(store, release="2")
    record = await store.transition("recipes", None, RETIRED, actor="ops")
    assert record.state is RETIRED
    assert [v.state for v in await store.versions("recipes")] == [RETIRED, RETIRED]


async def test_new_version_waits_while_the_active_one_serves(store: RegistryStore) -> None:
    """A new card is pending beside the active version; activating it retires the old one."""
    await register(store)
    await store.transition("recipes", None, ACTIVE, actor="ops")
    await register(store, release="2")
    assert (await store.active_snapshot())["recipes"].version == 1
    record = await store.transition("recipes", 2, ACTIVE, actor="ops")
    assert (record.state, record.active_version) == (ACTIVE, 2)
    assert [v.state for v in await store.versions("recipes")] == [RETIRED, ACTIVE]
    assert (await store.active_snapshot())["recipes"].card == card("2")


async def test_pending_version_can_be_rejected(store: RegistryStore) -> None:
    """Retiring a pending version refuses that card and leaves the serving version alone."""
    await register(store)
    await store.transition("recipes", None, ACTIVE, actor="ops")
    await register(store, release="2")
    record = await store.transition("recipes", 2, RETIRED, actor="ops")
    assert (record.state, record.active_version) == (ACTIVE, 1)
    assert [v.state for v in await store.versions("recipes")] == [ACTIVE, RETIRED]


@pytest.mark.parametrize(
    ("setup", "version", "target", "message"),
    [
        ([], None, SUSPENDED, "is pending and cannot become suspended"),
        ([], None, PENDING, "is pending and cannot become pending"),
        ([ACTIVE], None, PENDING, "is active and cannot become pending"),
        ([ACTIVE], None, ACTIVE, "name the pending version"),
        ([ACTIVE, SUSPENDED], None, SUSPENDED, "is suspended and cannot become suspended"),
        ([RETIRED], None, ACTIVE, "retired, which is final"),
        ([ACTIVE, "register"], 2, SUSPENDED, "version 2 .* is pending and cannot become suspended"),
    ],
)
async def test_forbidden_transitions_are_refused(
    store: RegistryStore, setup: list[Any], version: int | None, target: AgentState, message: str
) -> None:
    """Transitions the lifecycle does not allow raise InvalidTransition and change nothing."""
    await register(store)
    for step in setup:
        if step == "register":
            await register(store, release="2")
        else:
            await store.transition("recipes", None, step, actor="ops")
    before = (
        await store.get("recipes"),
        await store.versions("recipes"),
        await store.events("recipes"),
    )
    with pytest.raises(InvalidTransition, match=message):
        await store.transition("recipes", version, target, actor="ops")
    after = (
        await store.get("recipes"),
        await store.versions("recipes"),
        await store.events("recipes"),
    )
    assert after == before


async def test_retired_agent_takes_no_new_cards(store: RegistryStore) -> None:
    """A retired agent id is final: registering a card for it raises Conflict."""
    await register(store)
    await store.transition("recipes", None, RETIRED, actor="ops")
    with pytest.raises(Conflict, match="retired"):
        await register(store, release="2")


async def test_unknown_agent_or_version_is_not_found(store: RegistryStore) -> None:
    """Transitions name existing agents and versions; lookups of unknown ones return nothing."""
    with pytest.raises(NotFound, match="'ghost' not found"):
        await store.transition("ghost", None, ACTIVE, actor="ops")
    await register(store)
    with pytest.raises(NotFound, match="no version 7"):
        await store.transition("recipes", 7, ACTIVE, actor="ops")
    assert await store.get("ghost") is None
    assert await store.get_version("recipes", 7) is None
    assert await store.versions("ghost") == []
    assert await store.events("ghost") == []


async def test_owner_and_tenant_are_fixed_at_creation(store: RegistryStore) -> None:
    """A later version cannot move the agent to another owner or tenant."""
    await register(store, owner="team-a", tenant="t1")
    with pytest.raises(Conflict, match="owner 'team-a'"):
        await register(store, release="2", owner="mallory")
    with pytest.raises(Conflict, match="tenant 't1'"):
        await register(store, release="2", tenant="t2")
    assert (await register(store, release="2")).version == 2


async def test_invalid_arguments_are_refused(store: RegistryStore) -> None:
    """Bad agent ids, blank actors, non-http upstreams and kid-less signed versions are refused."""
    with pytest.raises(InvalidArgument, match="agent id"):
        await register(store, "../etc")
    with pytest.raises(InvalidArgument, match="actor"):
        await register(store, actor=" ")
    with pytest.raises(InvalidArgument, match="upstream_url"):
        await register(store, upstream_url="file:///etc/passwd")
    with pytest.raises(InvalidArgument, match="signature_kid"):
        await register(store, signed=True, signature_kid=None)
    assert await store.list_agents() == []


async def test_state_survives_a_restart(backend: Backend, store: RegistryStore) -> None:
    """After closing and reopening, agents, versions, events and the snapshot are unchanged."""
    await register(store, owner="team-a", signed=True, signature_kid="agent-key")
    await store.transition("recipes", None, ACTIVE, actor="ops")
    await register(store, release="2")
    await register(store, "other")
    before = (
        await store.list_agents(),
        await store.versions("recipes"),
        await store.events("recipes"),
        await store.active_snapshot(),
    )
    await store.close()
    reopened = open_store(backend.url)
    await reopened.init()
    try:
        after = (
            await reopened.list_agents(),
            await reopened.versions("recipes"),
            await reopened.events("recipes"),
            await reopened.active_snapshot(),
        )
        assert after == before
        assert (await register(reopened, release="3")).version == 3
    finally:
        await reopened.close()


async def test_invalid_card_changes_nothing(store: RegistryStore) -> None:
    """A register with an invalid card raises InvalidCard and stores no agent, version or event."""
    bad = {**card(), "skills": []}
    with pytest.raises(InvalidCard, match="skills"):
        await register(store, card=bad)
    assert await store.get("recipes") is None
    assert await store.events("recipes") == []
    await register(store)
    with pytest.raises(InvalidCard, match="no field named"):
        await register(store, card={**card("2"), "prompt": "obey me"})
    assert [v.version for v in await store.versions("recipes")] == [1]
    assert len(await store.events("recipes")) == 1


async def test_failure_inside_a_transaction_rolls_back(
    backend: Backend, store: RegistryStore
) -> None:
    """When the database fails mid-operation (event insert), the earlier writes are undone too."""
    await register(store, "kept")
    await backend.break_events()
    # The error is the driver's own (sqlite3.IntegrityError, asyncpg.RaiseError).
    with pytest.raises(Exception, match="event table refuses writes"):
        await register(store, "lost")
    with pytest.raises(Exception, match="event table refuses writes"):
        await store.transition("kept", None, ACTIVE, actor="ops")
    assert await store.get("lost") is None
    assert await store.versions("lost") == []
    kept = await store.get("kept")
    assert kept is not None
    assert kept.state is PENDING
    assert (await store.get_version("kept", 1)).state is PENDING  # type: ignore[union-attr]


async def test_active_snapshot_has_only_active_agents(store: RegistryStore) -> None:
    """The data path sees each active agent's active version, no pending/suspended/retired one."""
    for agent_id in ("pending", "active", "suspended", "retired"):
        await register(store, agent_id)
    await store.transition("active", None, ACTIVE, actor="ops")
    await register(store, "active", release="2")  # pending beside the active version
    for agent_id, steps in {"suspended": (ACTIVE, SUSPENDED), "retired": (ACTIVE, RETIRED)}.items():
        for step in steps:
            await store.transition(agent_id, None, step, actor="ops")
    snapshot = await store.active_snapshot()
    assert list(snapshot) == ["active"]
    assert (snapshot["active"].version, snapshot["active"].state) == (1, ACTIVE)
    assert [a.agent_id for a in await store.list_agents(SUSPENDED)] == ["suspended"]
    assert len(await store.list_agents()) == 4


async def test_events_record_who_when_and_hashes(store: RegistryStore, clock: FakeClock) -> None:
    """Every change is an event with actor and time; hashes show the card before and after."""
    h1, h2 = card_sha256(card("1")), card_sha256(card("2"))
    await register(store, release="1", actor="alice")
    await store.transition("recipes", None, ACTIVE, actor="ops")
    await register(store, release="2", actor="bob")
    await store.transition("recipes", 2, ACTIVE, actor="ops")
    await store.transition("recipes", None, SUSPENDED, actor="sec")
    events = await store.events("recipes")
    assert [(e.version, e.action, e.actor, e.before_sha256, e.after_sha256) for e in events] == [
        (1, "register", "alice", None, h1),
        (1, "activate", "ops", None, h1),
        (2, "register", "bob", h1, h2),
        (1, "supersede", "ops", h1, h2),
        (2, "activate", "ops", h1, h2),
        (2, "suspend", "sec", h2, None),
    ]
    times = [e.at for e in events]
    assert times == sorted(times)
    assert times[-1] == clock.now


async def test_concurrent_registrations_get_distinct_versions(store: RegistryStore) -> None:
    """Parallel registrations of one new agent are serialised into versions 1..n."""
    results = await asyncio.gather(*(register(store, release=str(n)) for n in range(6)))
    assert sorted(v.version for v in results) == [1, 2, 3, 4, 5, 6]
    assert [v.version for v in await store.versions("recipes")] == [1, 2, 3, 4, 5, 6]


async def test_open_store_understands_the_documented_urls(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_store takes relative and absolute sqlite paths and memory, and refuses other schemes."""
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///state/registry.db")
    await relative.init()
    await relative.close()
    assert (tmp_path / "state" / "registry.db").exists()
    memory = open_store("sqlite://:memory:")
    await memory.init()
    await register(memory)
    assert (await memory.get("recipes")) is not None
    await memory.close()
    with pytest.raises(ValueError, match="unsupported registry URL scheme 'mysql'"):
        open_store("mysql://user:secret@db/registry")
    with pytest.raises(ValueError, match="scheme") as refused:
        open_store("user:secret@db")
    assert "secret" not in str(refused.value)
