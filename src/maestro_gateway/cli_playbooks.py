"""`maestro-gateway playbooks list|actions|revert|findings` (through the admin API)."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote, urlencode

from maestro_gateway._admin_client import add_connection_args, call, token_of, when

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register the ``playbooks`` command group on the top-level subparsers."""
    p = sub.add_parser("playbooks", help="response playbooks: list, actions, revert (admin API)")
    add_connection_args(p, actor_help="who reverts (X-Maestro-Actor)")
    p.add_argument("--json", action="store_true", help="print the JSON answer")
    psub = p.add_subparsers(dest="playbooks_cmd", required=True)
    psub.add_parser("list", help="loaded playbooks, global caps and dry-run mode")
    a = psub.add_parser("actions", help="actions taken (or recorded, refused, skipped)")
    a.add_argument(
        "--status", choices=["applied", "dry_run", "refused", "skipped", "failed", "reverted"]
    )
    a = psub.add_parser("revert", help="lift an applied measure (audited)")
    a.add_argument("action_id")
    a = psub.add_parser("findings", help="recent behavioural findings")
    a.add_argument("--type", dest="finding_type")
    a.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    url, token = args.gateway, token_of(args)
    cmd = args.playbooks_cmd
    if cmd == "list":
        result = call(url, "GET", "/admin/v1/playbooks", token)
        if args.json:
            return _print(result)
        mode = "DRY RUN (global)" if result.get("dry_run") else "live"
        print(f"playbooks: {mode}; caps {json.dumps(result.get('limits', {}))}")
        for pb in result.get("playbooks", []):
            trig = pb["trigger"]
            acts = ",".join(a["type"] for a in pb["actions"])
            print(
                f"{pb['name']:<24} {'dry-run' if pb['dry_run'] else 'live':<8} "
                f"{'|'.join(trig['findings'])} conf>={trig['min_confidence']} "
                f"x{trig['count']}/{trig['window_s']:g}s -> {acts}"
            )
        return 0
    if cmd == "actions":
        query = f"?{urlencode({'status': args.status})}" if args.status else ""
        result = call(url, "GET", f"/admin/v1/playbooks/actions{query}", token)
        if args.json:
            return _print(result)
        for r in result["actions"]:
            until = when(r["until"]) if r.get("until") else "-"
            print(
                f"{r['id']}  {r['status']:<8} {r['playbook']:<20} {r['action']:<16} "
                f"{str(r['target'])[:40]:<40} until {until}  {r['reason'][:60]}"
            )
        return 0
    if cmd == "revert":
        path = f"/admin/v1/playbooks/actions/{quote(args.action_id, safe='')}/revert"
        result = call(url, "POST", path, token, {}, args.actor)
        if args.json:
            return _print(result)
        print(f"{result['id']}: {result['status']} by {result['reverted_by']}")
        return 0
    query = urlencode({k: v for k, v in (("type", args.finding_type), ("limit", args.limit)) if v})
    result = call(url, "GET", f"/admin/v1/detect/findings?{query}", token)
    if args.json:
        return _print(result)
    for f in result["findings"]:
        print(
            f"{when(f['at'])}  {f['type']:<16} conf={f['confidence']:.2f} "
            f"{f['principal'] or '-':<24} {json.dumps(f['evidence'])[:100]}"
        )
    return 0


def _print(result: Any) -> int:
    print(json.dumps(result, indent=2))
    return 0
