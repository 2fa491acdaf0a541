"""The `maestro-gateway` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from maestro_gateway._admin_client import add_connection_args, token_of
from maestro_gateway._admin_client import call as admin_call
from maestro_gateway._drift_cli import add_parser as add_drift_parser
from maestro_gateway._drift_cli import run as run_drift
from maestro_gateway.cli_approvals import add_parser as add_approvals_parser
from maestro_gateway.cli_approvals import run as run_approvals
from maestro_gateway.cli_grants import add_parser as add_grants_parser
from maestro_gateway.cli_grants import run as run_grants
from maestro_gateway.cli_pki import add_parser as add_pki_parser
from maestro_gateway.cli_pki import run as run_pki
from maestro_gateway.cli_playbooks import add_parser as add_playbooks_parser
from maestro_gateway.cli_playbooks import run as run_playbooks
from maestro_gateway.cli_policy import add_parser as add_policy_parser
from maestro_gateway.cli_policy import run as run_policy
from maestro_gateway.config import ConfigError, GatewayConfig, load_config

CONFIG_ENV = "MAESTRO_GATEWAY_CONFIG"


def _factory() -> Any:
    """uvicorn factory for multi-worker serving (the config path travels in the environment)."""
    from maestro_gateway.app import create_app
    from maestro_gateway.observability import setup_logging
    from maestro_gateway.server import install

    cfg = load_config(os.environ[CONFIG_ENV])
    setup_logging(cfg.logging.level, cfg.logging.format)
    install(cfg.server)  # this worker's GatewayHttpProtocol enforces cfg.server
    return create_app(cfg)


def serve(cfg: GatewayConfig, config_path: str) -> None:
    import uvicorn

    from maestro_gateway.app import create_app
    from maestro_gateway.observability import setup_logging
    from maestro_gateway.server import GatewayHttpProtocol, protocol_for, uvicorn_options

    setup_logging(cfg.logging.level, cfg.logging.format)
    # Header/body timeouts, header limits, connection caps (docs/rate-limits.md).
    protocol = GatewayHttpProtocol if cfg.workers > 1 else protocol_for(cfg.server)
    common: dict[str, Any] = {
        "host": cfg.listen.host,
        "port": cfg.listen.port,
        **uvicorn_options(cfg.server, protocol),
        "loop": "uvloop",
        "access_log": False,  # the gateway writes its own access log
        "log_config": None,
        "proxy_headers": False,  # never trust X-Forwarded-For from whoever connects
        "server_header": False,
        "lifespan": "on",
        **_tls_options(cfg),
    }
    if cfg.workers > 1:
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
        uvicorn.run("maestro_gateway.cli:_factory", factory=True, workers=cfg.workers, **common)
    else:
        uvicorn.run(create_app(cfg), **common)


def _tls_options(cfg: GatewayConfig) -> dict[str, Any]:
    """C12 inbound TLS with the gateway's SVID (docs/mtls.md): uvicorn's listener gets the same
    SSLContext the application reloads when the SVID rotates (no restart)."""
    import functools

    from maestro_gateway.spiffe._asgi_tls import server_context

    spiffe = cfg.spiffe
    paths = spiffe.resolve_paths() if spiffe.inbound.tls else None  # files or the Workload API
    if paths is None:
        return {}
    factory = functools.partial(server_context, paths, spiffe.inbound.require_client_cert)
    return {"ssl_context_factory": factory}


def _admin(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    return admin_call(url, method, path, token, body, os.environ.get("MAESTRO_ACTOR"))


def _agents(args: argparse.Namespace) -> int:
    url, token = args.gateway, token_of(args)
    if args.agents_cmd == "list":
        query = f"?state={args.state}" if args.state else ""
        result = _admin(url, "GET", f"/admin/v1/agents{query}", token=token)
        for agent in result["agents"]:
            print(
                f"{agent['agent_id']:<24} {agent['state']:<10} active={agent['active_version']} "
                f"latest={agent['latest_version']}"
            )
        return 0
    if args.agents_cmd == "register":
        body: dict[str, Any] = {"id": args.agent_id}
        if args.card_file:
            with open(args.card_file, encoding="utf-8") as fh:
                body["card"] = json.load(fh)
        else:
            body["card_url"] = args.card_url
        if args.upstream_url:
            body["upstream_url"] = args.upstream_url
        result = _admin(url, "POST", "/admin/v1/agents", body, token)
        print(
            f"registered {result['agent_id']} version {result['version']} (state {result['state']})"
        )
        return 0
    body = {"version": args.version} if args.version is not None else {}
    result = _admin(url, "POST", f"/admin/v1/agents/{args.agent_id}/{args.agents_cmd}", body, token)
    print(f"{result['agent_id']}: {result['state']} (active version {result['active_version']})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    import asyncio

    from maestro_gateway.audit import AuditLog, load_or_create_signer, verify

    try:
        cfg = load_config(args.config).audit
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration\n{exc}", file=sys.stderr)
        return 1

    trusted = None
    if getattr(args, "trusted_checkpoint", None):  # e.g. a witness's copy (docs/audit.md, Export)
        from maestro_gateway.audit.export import read_checkpoints

        with open(args.trusted_checkpoint, encoding="utf-8") as fh:
            trusted = (read_checkpoints(fh.read()) or [""])[-1]

    async def run() -> int:
        vkey = load_or_create_signer(cfg.key_path, cfg.key_name).vkey
        log = AuditLog.open(cfg.url, None, vkey=vkey)
        if args.audit_cmd == "verify":
            report = await verify(log, state_file=cfg.state_file, trusted_checkpoint=trusted)
            for problem in report.problems:
                print(f"PROBLEM: {problem}")
            print(
                f"{report.entries} entries, {report.checkpoints} checkpoints: "
                f"{'OK' if report.ok else 'TAMPERING DETECTED'}"
            )
            await log.close()
            return 0 if report.ok else 1
        await log.init()
        try:
            print(json.dumps(await log.prove(args.seq), indent=2))
        finally:
            await log.close()
        return 0

    return asyncio.run(run())


def _scan(args: argparse.Namespace) -> int:
    from maestro_gateway.config import GuardsConfig
    from maestro_gateway.scan import scan_files

    guards = GuardsConfig()
    if args.config:
        try:
            guards = load_config(args.config).guards
        except ConfigError as exc:
            print(f"{args.config}: invalid configuration\n{exc}", file=sys.stderr)
            return 1
    try:
        stats = scan_files(
            args.guard, args.inputs, sys.stdout.buffer, guards, args.media_type, args.direction
        )
    except FileNotFoundError as exc:
        print(f"error: no such file or directory: {exc}", file=sys.stderr)
        return 2
    sys.stdout.buffer.flush()
    mean = stats.latency_us_total / max(1, stats.rows - stats.bad)
    print(
        f"scan --guard {args.guard}: {stats.rows} rows, {stats.flagged} flagged, "
        f"{stats.bad} bad rows, mean {mean:.0f} µs/row",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maestro-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--config", required=True, help="YAML configuration file")
    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("file")
    p = sub.add_parser("demo", help="run the gateway with three demo agents (state in .demo/)")
    p.add_argument("--state-dir", default=".demo")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--agent-port-base", type=int, default=9101, help="echo, writer, worker ports")
    p = sub.add_parser("agents", help="manage the agent registry through the admin API")
    add_connection_args(p)
    asub = p.add_subparsers(dest="agents_cmd", required=True)
    a = asub.add_parser("list")
    a.add_argument("--state", choices=["pending", "active", "suspended", "retired"])
    a = asub.add_parser("register")
    a.add_argument("agent_id")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--card-url")
    src.add_argument("--card-file")
    a.add_argument("--upstream-url")
    for action in ("activate", "suspend", "retire"):
        a = asub.add_parser(action)
        a.add_argument("agent_id")
        a.add_argument("--version", type=int)
    p = sub.add_parser("scan", help="run one content guard over JSON lines (offline)")
    p.add_argument("--guard", required=True, choices=["firewall", "waf", "dlp", "sanitize"])
    p.add_argument("--config", help="take the guard's settings from this gateway configuration")
    p.add_argument("--media-type", help="sanitize: output mode when a row names none")
    p.add_argument(
        "--direction",
        choices=["input", "output"],
        default="input",
        help="firewall: rows are requests (input) or agent output (output) unless they say",
    )
    p.add_argument("inputs", nargs="+", help="JSON-lines files, directories of *.jsonl, or -")
    add_approvals_parser(sub)
    add_policy_parser(sub)
    add_pki_parser(sub)
    add_playbooks_parser(sub)
    add_drift_parser(sub)
    add_grants_parser(sub)
    p = sub.add_parser("audit", help="verify the audit log or prove an entry")
    p.add_argument("--config", required=True, help="the gateway's YAML configuration")
    asub = p.add_subparsers(dest="audit_cmd", required=True)
    a = asub.add_parser("verify", help="check every entry against the signed checkpoints")
    a.add_argument("--trusted-checkpoint", help="a file of checkpoint notes held elsewhere (last)")
    a = asub.add_parser("prove", help="print an inclusion proof for one entry")
    a.add_argument("seq", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "check-config":
        try:
            load_config(args.file)
        except ConfigError as exc:
            print(f"{args.file}: invalid configuration\n{exc}", file=sys.stderr)
            return 1
        print(f"{args.file}: OK")
        return 0
    if args.cmd == "serve":
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(f"{args.config}: invalid configuration\n{exc}", file=sys.stderr)
            return 1
        serve(cfg, args.config)
        return 0
    if args.cmd == "demo":
        from maestro_gateway.demo.run import run_demo

        return run_demo(args.state_dir, args.port, args.agent_port_base)
    if args.cmd == "audit":
        return _audit(args)
    if args.cmd == "approvals":
        return run_approvals(args)
    if args.cmd == "playbooks":
        return run_playbooks(args)
    if args.cmd == "scan-drift":
        return run_drift(args)
    if args.cmd == "grants":
        return run_grants(args)
    if args.cmd == "scan":
        return _scan(args)
    if args.cmd == "policy":
        return run_policy(args)
    if args.cmd == "pki":
        return run_pki(args)
    return _agents(args)


if __name__ == "__main__":
    sys.exit(main())
