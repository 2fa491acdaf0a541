"""``python -m maestro_gateway.identity``: create, rotate, revoke and list API keys."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from maestro_gateway.identity.apikeys import ApiKeyStore

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    unit = _UNITS.get(text[-1:])
    try:
        return float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"duration {text!r}: like 3600, 90m, 12h or 30d") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maestro_gateway.identity")
    parser.add_argument("--store", required=True, help="the key store file (identity.api_keys)")
    parser.add_argument("--scrypt-n", type=int, default=2**14)
    sub = parser.add_subparsers(dest="cmd", required=True)
    create = sub.add_parser("create", help="issue a key (printed once, stored hashed)")
    create.add_argument("name", help="the service account")
    scope_help = "'*', '<agent>', '<agent>/*' or '<agent>/<skill>' (repeatable)"
    create.add_argument("--scope", action="append", required=True, help=scope_help)
    create.add_argument("--role", action="append", default=[])
    create.add_argument("--tenant")
    create.add_argument("--ttl", type=_duration, help="lifetime, e.g. 90d (default: none)")
    rotate = sub.add_parser("rotate", help="issue a replacement; the old key ends after --grace")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=_duration, default=0.0)
    rotate.add_argument("--ttl", type=_duration)
    revoke = sub.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")
    sub.add_parser("list", help="ids, names, scopes and expiry (never keys)")
    args = parser.parse_args(argv)
    store = ApiKeyStore(args.store, scrypt_n=args.scrypt_n)
    try:
        if args.cmd == "create":
            key, rec = store.create(args.name, args.scope, args.ttl, args.role, args.tenant)
            print(f"{key}\n# id {rec.id}: shown once, stored as an scrypt hash", file=sys.stdout)
        elif args.cmd == "rotate":
            key, rec = store.rotate(args.key_id, args.grace, args.ttl)
            print(f"{key}\n# new id {rec.id}; {args.key_id} ends in {args.grace:.0f} s")
        elif args.cmd == "revoke":
            store.revoke(args.key_id)
            print(f"revoked {args.key_id}")
        else:
            now = time.time()
            for r in store.list():
                state = "usable" if r.usable(now) else "revoked/expired"
                expires = (
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.expires_at))
                    if r.expires_at
                    else "never"
                )
                print(f"{r.id}  {r.name}  scopes={','.join(r.scopes)}  expires={expires}  {state}")
    except KeyError as exc:
        print(f"no such key id: {exc}", file=sys.stderr)
        return 1
    return 0
