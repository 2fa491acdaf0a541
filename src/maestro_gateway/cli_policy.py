"""`maestro-gateway policy test|show`: check a policy bundle before the gateway takes it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from maestro_gateway.config import ConfigError, load_config
from maestro_gateway.policy import PolicyBundle, PolicyEngine, PolicyError
from maestro_gateway.policy.bundle_tests import CaseResult, PolicyCase, load_cases, run_cases
from maestro_gateway.policy.git_bundle import load_git_bundle

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("policy", help="test or show the Cedar policy bundle")
    psub = p.add_subparsers(dest="policy_cmd", required=True)
    for name, text in (
        ("test", "run the bundle's policy tests (exit 1 when one fails)"),
        ("show", "print the bundle's version and policy ids"),
    ):
        a = psub.add_parser(name, help=text)
        src = a.add_mutually_exclusive_group(required=True)
        src.add_argument("--config", help="the bundle the gateway configuration names")
        src.add_argument("--dir", help="a bundle work tree: policies/*.cedar and tests/*.yaml")
        a.add_argument("--no-default", action="store_true", help="--dir: without the defaults")


def _from_dir(root: Path, include_default: bool) -> tuple[PolicyBundle, list[PolicyCase]]:
    policies = sorted((root / "policies").glob("*.cedar"))
    if not policies:
        raise PolicyError(f"{root}: no policies/*.cedar")
    bundle = PolicyBundle.from_files([str(p) for p in policies], include_default)
    cases: list[PolicyCase] = []
    for f in sorted((root / "tests").glob("*.y*ml")):
        cases += load_cases(f.read_text(encoding="utf-8"), str(f))
    return bundle, cases


def _load(args: argparse.Namespace) -> tuple[PolicyBundle, list[CaseResult]]:
    if args.dir:
        bundle, cases = _from_dir(Path(args.dir), not args.no_default)
        return bundle, run_cases(PolicyEngine(bundle), cases)
    cfg = load_config(args.config).policy
    if cfg.git is not None:
        loaded = load_git_bundle(cfg.git)  # refuses a bundle whose tests fail
        return loaded.bundle, list(loaded.results)
    return PolicyBundle.from_files(cfg.files, cfg.include_default), []


def run(args: argparse.Namespace) -> int:
    try:
        bundle, results = _load(args)
    except (PolicyError, ConfigError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.policy_cmd == "show":
        print(f"bundle {bundle.version} from {bundle.source}")
        for line in bundle.text.splitlines():
            if line.startswith("@id("):
                print(f"  {line[5:-2]}")
        return 0
    failed = 0
    for r in results:
        failed += not r.passed
        mark = "PASS" if r.passed else "FAIL"
        why = ", ".join(r.policies) or "no policy matched"
        print(f"{mark} {r.case.name}: {r.got} ({why})")
    print(f"{len(results)} cases, {failed} failed; bundle {bundle.version}")
    return 1 if failed else 0
