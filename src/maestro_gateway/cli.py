"""The `maestro-gateway` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from maestro_gateway.config import ConfigError, GatewayConfig, load_config

CONFIG_ENV = "MAESTRO_GATEWAY_CONFIG"


def _factory() -> Any:
    """uvicorn factory for multi-worker serving (the config path travels in the environment)."""
    from maestro_gateway.app import create_app
    from maestro_gateway.observability import setup_logging

    cfg = load_config(os.environ[CONFIG_ENV])
    setup_logging(cfg.logging.level, cfg.logging.format)
    return create_app(cfg)


def serve(cfg: GatewayConfig, config_path: str) -> None:
    import uvicorn

    from maestro_gateway.app import create_app
    from maestro_gateway.observability import setup_logging

    setup_logging(cfg.logging.level, cfg.logging.format)
    common: dict[str, Any] = {
        "host": cfg.listen.host,
        "port": cfg.listen.port,
        "http": "httptools",
        "loop": "uvloop",
        "access_log": False,  # the gateway writes its own access log
        "log_config": None,
        "proxy_headers": False,  # never trust X-Forwarded-For from whoever connects
        "server_header": False,
        "lifespan": "on",
    }
    if cfg.workers > 1:
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
        uvicorn.run("maestro_gateway.cli:_factory", factory=True, workers=cfg.workers, **common)
    else:
        uvicorn.run(create_app(cfg), **common)


def _admin(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if actor := os.environ.get("MAESTRO_ACTOR"):
        request.add_header("X-Maestro-Actor", actor)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise SystemExit(f"error: HTTP {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"error: cannot reach the gateway at {url}: {exc.reason}") from None


def _agents(args: argparse.Namespace) -> int:
    url, token = args.gateway, args.token or os.environ.get("MAESTRO_ADMIN_TOKEN")
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

    async def run() -> int:
        vkey = load_or_create_signer(cfg.key_path, cfg.key_name).vkey
        log = AuditLog.open(cfg.url, None, vkey=vkey)
        if args.audit_cmd == "verify":
            report = await verify(log, state_file=cfg.state_file)
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
    p.add_argument(
        "--gateway", default=os.environ.get("MAESTRO_GATEWAY_URL", "http://127.0.0.1:8080")
    )
    p.add_argument("--token", default=None, help="admin token (or MAESTRO_ADMIN_TOKEN)")
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
    p = sub.add_parser("audit", help="verify the audit log or prove an entry")
    p.add_argument("--config", required=True, help="the gateway's YAML configuration")
    asub = p.add_subparsers(dest="audit_cmd", required=True)
    asub.add_parser("verify", help="check every entry against the signed checkpoints")
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
    return _agents(args)


if __name__ == "__main__":
    sys.exit(main())
