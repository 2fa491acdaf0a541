"""``python -m maestro_gateway.identity``: manage service-account API keys."""

from maestro_gateway.identity._apikeys_cli import main

raise SystemExit(main())
