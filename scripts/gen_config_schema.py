"""Write the JSON Schema of the gateway configuration (``--check``: fail when stale)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from maestro_gateway.config import config_json_schema

TARGET = Path(__file__).resolve().parent.parent / "src/maestro_gateway/schemas/config.schema.json"


def render() -> str:
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run `make schema`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
