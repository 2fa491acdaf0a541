"""`maestro-gateway pki init|issue|rotate`: the development CA for X.509 SVIDs."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from typing import Any

from maestro_gateway.spiffe import CaError, InvalidSpiffeId, init_ca, issue_svid, rotate_svid

__all__ = ["add_parser", "parse_ttl", "run"]


def parse_ttl(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``24h`` or ``7d``."""
    m = re.fullmatch(r"(\d{1,6})([smhd])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration like 30m, 24h or 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return dt.timedelta(**{unit: int(m.group(1))})


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pki", help="development CA: issue short-lived SPIFFE X.509 SVIDs")
    p.add_argument("--dir", default=".demo/pki", help="the CA directory")
    psub = p.add_subparsers(dest="pki_cmd", required=True)
    a = psub.add_parser("init", help="create the trust domain's root CA")
    a.add_argument("--trust-domain", required=True)
    a = psub.add_parser("issue", help="issue NAME.pem/NAME.key for a SPIFFE ID")
    a.add_argument("name")
    a.add_argument("--spiffe-id", required=True)
    a.add_argument("--ttl", type=parse_ttl, default=dt.timedelta(hours=24))
    a = psub.add_parser("rotate", help="re-issue NAME under the same SPIFFE ID, new key")
    a.add_argument("name")
    a.add_argument("--ttl", type=parse_ttl, default=dt.timedelta(hours=24))


def run(args: argparse.Namespace) -> int:
    try:
        if args.pki_cmd == "init":
            root = init_ca(args.dir, args.trust_domain)
            print(f"CA for spiffe://{args.trust_domain} in {root} (trust bundle: bundle.pem)")
            return 0
        if args.pki_cmd == "issue":
            issued = issue_svid(args.dir, args.name, args.spiffe_id, args.ttl)
        else:
            issued = rotate_svid(args.dir, args.name, args.ttl)
    except (CaError, InvalidSpiffeId) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{issued.spiffe_id}: {issued.cert_path} (key {issued.key_path}), "
        f"valid until {issued.not_after:%Y-%m-%dT%H:%M:%SZ}"
    )
    return 0
