"""What to do when a test's backing service or optional engine is missing.

A developer's machine may lack PostgreSQL or Hyperscan: the test is skipped, with the reason.
CI sets ``MAESTRO_REQUIRE_INTEGRATION=1`` (in ``.ci/run``): there the same test fails instead,
so an integration test can never pass by being skipped.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = os.environ.get("MAESTRO_REQUIRE_INTEGRATION") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it where integration tests are required."""
    if REQUIRED:
        pytest.fail(f"required for this run, but {reason}")
    pytest.skip(reason)
