"""C16 delegated identities, on use: a child agent's token does exactly what it was issued for.

A delegated token (minted by ``POST /oauth2/token``, see ``identity.exchange``) reaches this
guard as an identity whose ``delegation`` is the actor chain and whose ``scopes`` are the
granted skills. Authentication has already refused it for any agent but its audience; here:

- the actor chain must not be longer than ``identity.exchange.max_depth`` *now* (a limit
  lowered after issue applies at once);
- the agent called must be the token's audience (again: the check must not depend on one place);
- ``SendMessage`` / ``SendStreamingMessage`` must name a skill (``message.metadata.skillId``,
  or the skill the router chose) and that skill must be in the token's scope. A message naming
  no skill is refused, whatever the agent: the holder knows which skills it was given, and an
  unnamed skill would leave the choice to the agent;
- push-notification configs are refused: they would have the agent send task data to an
  address of the holder's choosing after the token is gone.

Task reads, cancels and listings pass to authorization, which decides them for the user (the
token's principal) like any other request. Ordinary (non-delegated) identities pass untouched.
Refusals are 403 with code ``DELEGATION_FORBIDDEN``.
"""

from __future__ import annotations

from maestro_gateway.context import RequestContext
from maestro_gateway.identity.config import ExchangeConfig
from maestro_gateway.identity.model import Identity
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = ["DELEGATION_FORBIDDEN", "NAME", "DelegationGuard"]

NAME = "delegation"
DELEGATION_FORBIDDEN = -32088
"""JSON-RPC error code for a delegated token used outside its audience, scope or depth."""

_MESSAGES = frozenset({"SendMessage", "SendStreamingMessage"})
_PUSH = frozenset(
    {
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
    }
)


class DelegationGuard:
    """C16: a delegated token may call only its audience agent, with only its skills."""

    name = NAME
    fail_mode = FailMode.FAIL_CLOSED

    def __init__(self, cfg: ExchangeConfig) -> None:
        self.max_depth = cfg.max_depth

    async def on_request(self, ctx: RequestContext) -> Verdict:
        ident = ctx.extra.get("identity")
        if not isinstance(ident, Identity) or not ident.delegation:
            return ALLOW
        if len(ident.delegation) > self.max_depth:
            return _deny(
                f"delegation chain of {len(ident.delegation)} exceeds the limit of "
                f"{self.max_depth}",
                "delegation-depth",
            )
        if ctx.agent_id not in ident.audience:
            return _deny("delegated token is not for this agent", "delegation-audience")
        if ctx.method in _PUSH:
            return _deny("delegated tokens may not configure push notifications", "delegation-push")
        if ctx.method not in _MESSAGES:
            return ALLOW
        if ctx.skill_id is None:
            return _deny(
                "a delegated token must name its skill (message.metadata.skillId)",
                "delegation-no-skill",
            )
        if ctx.skill_id not in ident.scopes:
            return _deny(
                f"skill {ctx.skill_id!r} is outside this delegated token's scope",
                "delegation-scope",
            )
        return ALLOW

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW


def _deny(reason: str, rule: str) -> Verdict:
    return Verdict.deny(403, DELEGATION_FORBIDDEN, reason, NAME, rule=rule)
