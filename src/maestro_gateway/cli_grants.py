"""`maestro-gateway grants list|show|issue|revoke|request`: just-in-time grants (C17).

``list``, ``show``, ``issue`` and ``revoke`` use the admin API (the admin token, loopback, or an
approver's bearer JWT in ``--token``; ``--actor`` names the approver for the bootstrap admin).
``request`` asks for a grant for the caller itself at ``/grants/v1/request`` with the caller's
own bearer token; it is issued only when policy permits (docs/grants.md).
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote, urlencode

from maestro_gateway._admin_client import add_connection_args, call, token_of, when

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register the ``grants`` command group on the top-level subparsers."""
    p = sub.add_parser("grants", help="issue, list, revoke and request just-in-time grants")
    add_connection_args(
        p,
        token_help="admin token or bearer JWT (or MAESTRO_ADMIN_TOKEN)",
        actor_help=(
            "the approver's name for the bootstrap admin (X-Maestro-Actor; or MAESTRO_ACTOR)"
        ),
    )
    gsub = p.add_subparsers(dest="grants_cmd", required=True)
    a = gsub.add_parser("list", help="grants, newest first")
    a.add_argument("--principal")
    a.add_argument("--agent")
    a.add_argument("--active", action="store_true", help="only grants that can still be used")
    a.add_argument("--json", action="store_true", help="print the JSON answer")
    a = gsub.add_parser("show", help="one grant")
    a.add_argument("grant_id")
    for name, helptext in (
        ("issue", "issue a grant to a principal (approver)"),
        ("request", "ask for a grant for yourself (issued only if policy permits)"),
    ):
        a = gsub.add_parser(name, help=helptext)
        if name == "issue":
            a.add_argument("--principal", required=True, help="who may use the grant")
        a.add_argument("--agent", required=True)
        a.add_argument("--skill", required=True)
        a.add_argument("--task", help="only within this task (taskId or contextId)")
        a.add_argument("--ttl", type=float, help="seconds until it expires")
        a.add_argument("--uses", type=int, help="how many calls it allows")
        a.add_argument("--reason", default="", help="recorded in the audit log")
    a = gsub.add_parser("revoke", help="revoke a grant now")
    a.add_argument("grant_id")
    a.add_argument("--reason", default="", help="recorded in the audit log")


def run(args: argparse.Namespace) -> int:
    url, token = args.gateway, token_of(args)
    cmd = args.grants_cmd
    if cmd == "list":
        query = {k: v for k, v in (("principal", args.principal), ("agent", args.agent)) if v}
        if args.active:
            query["active"] = "1"
        path = "/admin/v1/grants" + (f"?{urlencode(query)}" if query else "")
        result = call(url, "GET", path, token)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        for g in result["grants"]:
            print(_line(g))
        return 0
    if cmd == "show":
        path = f"/admin/v1/grants/{quote(args.grant_id, safe='')}"
        print(json.dumps(call(url, "GET", path, token), indent=2))
        return 0
    if cmd == "revoke":
        path = f"/admin/v1/grants/{quote(args.grant_id, safe='')}/revoke"
        result = call(url, "POST", path, token, {"reason": args.reason}, args.actor)
        print(f"{result['id']}: revoked by {result['revoked_by']}")
        return 0
    body: dict[str, Any] = {"agent": args.agent, "skill": args.skill, "reason": args.reason}
    for key, value in (("task_id", args.task), ("ttl_s", args.ttl), ("uses", args.uses)):
        if value is not None:
            body[key] = value
    if cmd == "issue":
        body["principal"] = args.principal
        result = call(url, "POST", "/admin/v1/grants", token, body, args.actor)
    else:
        result = call(url, "POST", "/grants/v1/request", token, body)
    print(_line(result))
    return 0


def _line(g: dict[str, Any]) -> str:
    uses = "∞" if g["uses_left"] is None else str(g["uses_left"])
    task = g["task_id"] or "*"
    return (
        f"{g['id']}  {g['state']:<9} {g['principal']:<28} {g['agent_id']}/{g['skill_id']}"
        f"  task={task} uses_left={uses} until={when(g['expires_at'])} by={g['issued_by']}"
    )
