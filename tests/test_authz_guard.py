"""C8 authz guard: Cedar on the request path, tasks bound to their creator, hidden = absent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maestro_gateway.a2a.errors import METHOD_NOT_FOUND, TASK_NOT_FOUND
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.authz import AuthzGuard, AuthzGuardConfig
from maestro_gateway.policy import PolicyConfig, PolicyRuntime
from maestro_gateway.policy.engine import Decision
from maestro_gateway.reply import verdict_error
from maestro_gateway.types import VerdictKind


@dataclass(frozen=True)
class Who:
    """Stands in for an authenticated identity (the attributes the policy input reads)."""

    subject: str
    tenant: str | None = None
    roles: tuple[str, ...] = ()
    mfa: bool = True
    kind: str = "person"


def guard(identity_required: bool = True, tenants: dict[str, str] | None = None) -> AuthzGuard:
    rt = PolicyRuntime.from_config(PolicyConfig(), identity_required=identity_required)
    rt.tenant_of = lambda agent: (tenants or {}).get(agent)
    return AuthzGuard(AuthzGuardConfig(), rt)


def ctx(method: str, params: Any, who: Who | None, agent: str = "echo") -> RequestContext:
    c = RequestContext("r1", agent, method, params, client_addr="10.1.1.1")
    if who is not None:
        c.extra["principal"] = f"https://idp|{who.subject}"
        c.extra["identity"] = who
    return c


def send(task_id: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    if task_id:
        msg["taskId"] = task_id
    return {"message": msg}


TASK = {"id": "t-1", "contextId": "c", "status": {"state": "TASK_STATE_WORKING"}}


async def test_task_is_readable_by_its_creator_only() -> None:
    """A task named in alice's answer is hers: she may read it; bob gets TaskNotFound."""
    g = guard()
    alice, bob = Who("alice"), Who("bob")
    c = ctx("SendMessage", send(), alice)
    assert (await g.on_request(c)).allowed
    assert (await g.on_response(c, {"task": TASK})).allowed
    assert (await g.on_request(ctx("GetTask", {"id": "t-1"}, alice))).allowed
    v = await g.on_request(ctx("GetTask", {"id": "t-1"}, bob))
    assert v.kind is VerdictKind.DENY
    err = verdict_error(v)
    assert (err.code, err.http_status, err.message) == (TASK_NOT_FOUND, 404, "task not found")
    assert "authz" not in str(err.jsonrpc(1))  # indistinguishable from a missing task
    assert not (await g.on_request(ctx("CancelTask", {"id": "t-1"}, bob))).allowed
    assert not (await g.on_request(ctx("SubscribeToTask", {"id": "t-1"}, bob))).allowed


async def test_nobody_continues_another_callers_task() -> None:
    """A SendMessage carrying someone else's taskId is refused as if the task did not exist."""
    g = guard()
    c = ctx("SendStreamingMessage", send(), Who("alice"))
    await g.on_request(c)
    await g.on_stream_event(c, {"statusUpdate": {"taskId": "t-9", "contextId": "c"}})
    assert (await g.on_request(ctx("SendMessage", send("t-9"), Who("alice")))).allowed
    v = await g.on_request(ctx("SendMessage", send("t-9"), Who("mallory")))
    assert v.kind is VerdictKind.DENY
    assert verdict_error(v).code == TASK_NOT_FOUND


async def test_first_answer_binds_the_task_and_cannot_be_taken_over() -> None:
    """A later answer naming the same task id does not change its owner."""
    g = guard()
    a = ctx("SendMessage", send(), Who("alice"))
    await g.on_response(a, {"task": TASK})
    m = ctx("SendMessage", send(), Who("mallory"))
    await g.on_response(m, {"task": TASK})
    assert not (await g.on_request(ctx("GetTask", {"id": "t-1"}, Who("mallory")))).allowed


async def test_unknown_task_is_not_found() -> None:
    """A task the gateway never saw created belongs to nobody: not found (fail closed)."""
    v = await guard().on_request(ctx("GetTask", {"id": "never"}, Who("alice")))
    assert verdict_error(v).code == TASK_NOT_FOUND


async def test_other_tenants_agent_is_answered_as_missing() -> None:
    """A tenant-b agent looks exactly like a missing agent to a tenant-a caller."""
    g = guard(tenants={"payroll": "b"})
    v = await g.on_request(ctx("SendMessage", send(), Who("u", tenant="a"), agent="payroll"))
    err = verdict_error(v)
    assert (err.code, err.http_status, err.message) == (METHOD_NOT_FOUND, 404, "agent not found")
    assert (await g.on_request(ctx("SendMessage", send(), Who("v", tenant="b"), "payroll"))).allowed


async def test_list_tasks_keeps_only_the_callers_tasks() -> None:
    """ListTasks answers are filtered to the tasks the caller may read."""
    g = guard()
    a = ctx("SendMessage", send(), Who("alice"))
    await g.on_response(a, {"task": TASK})
    listing = {"tasks": [TASK, {**TASK, "id": "t-2"}], "totalSize": 2, "nextPageToken": ""}
    v = await g.on_response(ctx("ListTasks", {}, Who("alice")), listing)
    assert v.kind is VerdictKind.MUTATE
    assert [t["id"] for t in v.payload["tasks"]] == ["t-1"]
    assert v.payload["totalSize"] == 1


async def test_anonymous_requests_follow_identity_required() -> None:
    """Without identity, callers are anonymous: allowed when identity is off, denied when on."""
    assert (await guard(False).on_request(ctx("SendMessage", send(), None))).allowed
    assert not (await guard(True).on_request(ctx("SendMessage", send(), None))).allowed


async def test_methods_outside_the_action_map_are_denied() -> None:
    """A method the policy input does not know is undecided, so denied."""
    v = await guard().on_request(ctx("MadeUpMethod", {}, Who("alice")))
    assert v.kind is VerdictKind.DENY


async def test_every_decision_is_recorded() -> None:
    """The decision sink receives a record per decision, denies included."""
    g = guard()
    seen: list[Decision] = []
    g._rt.on_decision = lambda d, _ctx: seen.append(d)
    c = ctx("SendMessage", send(), Who("alice"))
    await g.on_request(c)
    await g.on_request(ctx("GetTask", {"id": "nope"}, Who("alice")))
    assert [d.allowed for d in seen] == [True, False]
    assert seen[0].record()["policies"] == ["invoke-own-tenant"]
    assert c.extra["decisions"] == [seen[0].decision_id]


async def test_a_verified_workload_is_its_own_principal() -> None:
    """A caller known only by its client SVID is a Maestro::Workload keyed by its SPIFFE ID:
    it may invoke with identity required, and its tasks are its own."""
    g = guard(identity_required=True)
    c = ctx("SendMessage", send(), None)
    c.extra["client_spiffe_id"] = "spiffe://corp.test/agent/planner"
    assert (await g.on_request(c)).allowed
    await g.on_response(c, {"task": TASK})
    other = ctx("GetTask", {"id": "t-1"}, None)
    other.extra["client_spiffe_id"] = "spiffe://corp.test/agent/other"
    assert not (await g.on_request(other)).allowed
    same = ctx("GetTask", {"id": "t-1"}, None)
    same.extra["client_spiffe_id"] = "spiffe://corp.test/agent/planner"
    assert (await g.on_request(same)).allowed
