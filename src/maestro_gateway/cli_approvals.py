"""`maestro-gateway approvals list|show|approve|deny`: held requests, through the admin API."""

from __future__ import annotations

import argparse
import json
import unicodedata
from typing import Any
from urllib.parse import quote

from maestro_gateway._admin_client import add_connection_args, call, token_of, when

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register the ``approvals`` command group on the top-level subparsers."""
    p = sub.add_parser("approvals", help="list, inspect and decide held requests (admin API)")
    add_connection_args(
        p, actor_help="who decides (X-Maestro-Actor; or MAESTRO_ACTOR); required to approve or deny"
    )
    asub = p.add_subparsers(dest="approvals_cmd", required=True)
    a = asub.add_parser("list", help="held requests, newest first")
    a.add_argument(
        "--state",
        choices=["pending", "approved", "denied", "expired", "released", "cancelled"],
    )
    a.add_argument("--json", action="store_true", help="print the JSON answer")
    a = asub.add_parser("show", help="the exact held payload with its risk findings")
    a.add_argument("hold_id")
    for action in ("approve", "deny"):
        a = asub.add_parser(action)
        a.add_argument("hold_id")
        a.add_argument("--reason", default="", help="recorded in the audit log")


def run(args: argparse.Namespace) -> int:
    url, token = args.gateway, token_of(args)
    if args.approvals_cmd == "list":
        query = f"?state={args.state}" if args.state else ""
        result = call(url, "GET", f"/admin/v1/approvals{query}", token)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        for h in result["approvals"]:
            print(
                _printable(
                    f"{h['id']}  {h['state']:<9} {h['agent_id']:<16} {h['requester']:<20} "
                    f"{when(h['created_at'])}  {h['reason'][:80]}"
                )
            )
        return 0
    path = f"/admin/v1/approvals/{quote(args.hold_id, safe='')}"
    if args.approvals_cmd == "show":
        print(_printable(json.dumps(call(url, "GET", path, token), indent=2, ensure_ascii=False)))
        return 0
    if not args.actor:
        raise SystemExit("error: a decision needs your name: --actor NAME (or MAESTRO_ACTOR)")
    body = {"reason": args.reason}
    result = call(url, "POST", f"{path}/{args.approvals_cmd}", token, body, args.actor)
    print(f"{result['id']}: {result['state']} by {result['decided_by']}")
    return 0


def _printable(text: str) -> str:
    """Escape control, format and unassigned characters (ANSI escapes, bidi overrides): held
    payloads come from requesters and must not drive the approver's terminal."""
    return "".join(
        f"\\u{ord(c):04x}" if c != "\n" and unicodedata.category(c).startswith("C") else c
        for c in text
    )
