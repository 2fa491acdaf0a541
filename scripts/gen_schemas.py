#!/usr/bin/env python3
"""Write src/maestro_gateway/schemas/a2a-1.0.json from the A2A proto in a2a-sdk.

Usage: python scripts/gen_schemas.py [--check]

With --check nothing is written; the exit status is 1 when the checked-in file differs from a
fresh build (stale), 0 when it is current. The generator itself lives in
maestro_gateway.a2a.schemagen; build_schema is re-exported here for convenience.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maestro_gateway.a2a.schemagen import SCHEMA_FILE, build_schema, render_schema

__all__ = ["OUTPUT", "build_schema", "main"]

OUTPUT = Path(__file__).resolve().parents[1] / "src" / "maestro_gateway" / "schemas" / SCHEMA_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the checked-in schema is stale"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help="file to write or check")
    args = parser.parse_args(argv)
    text = render_schema(build_schema())
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run `make schema`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
