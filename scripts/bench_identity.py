"""Cost of authentication on the hot path: JWT verify with cached keys, and the whole guard.

    .venv/bin/python scripts/bench_identity.py [--n 20000]

Keys come from a local JWKS file (so the figure is the CPU cost with a warm cache, no I/O).
Prints p50/p99 per call, in µs, for RS256 (2048-bit) and ES256 tokens: with the verified-token
cache off (every call checks the signature: a token seen for the first time) and on (the same
bearer token again: claims and revocation re-checked, signature not).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from maestro_gateway.context import RequestContext
from maestro_gateway.guards.authn import AuthnGuard, AuthnGuardConfig
from maestro_gateway.identity import Authenticator, IdentityConfig

ISS, AUD = "https://idp.example", "urn:maestro:gateway"


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


async def run(n: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa1", "alg": "RS256"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec1", "alg": "ES256"})
    jwks = {"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]}
    (tmp / "jwks.json").write_text(json.dumps(jwks))
    now = int(time.time())
    claims = {"iss": ISS, "sub": "alice", "aud": AUD, "iat": now, "exp": now + 3600,
              "jti": "j1", "amr": ["pwd", "otp"], "auth_time": now, "roles": ["user"]}  # fmt: skip
    for cache_s in (0.0, 60.0):
        cfg = IdentityConfig.model_validate(
            {"verified_token_cache_s": cache_s,
             "issuers": [{"issuer": ISS, "audience": [AUD], "discovery": False,
                          "jwks_file": str(tmp / "jwks.json"), "algorithms": ["RS256", "ES256"]}]}
        )  # fmt: skip
        auth = Authenticator(cfg)
        guard = AuthnGuard(
            AuthnGuardConfig.model_validate({"required": True, "mfa": {"second_factor": True}}),
            auth,
        )
        mode = "cache off" if cache_s == 0 else "cache on "
        for alg, key in (("RS256", rsa), ("ES256", ec)):
            token = jwt.encode({"alg": alg, "kid": key.kid, "typ": "at+jwt"}, claims, key)
            headers = {"authorization": f"Bearer {token}"}
            await auth.authenticate(headers)  # warm the key cache
            for label in ("authenticate", "guard.on_request"):
                samples: list[float] = []
                for _ in range(n):
                    ctx = RequestContext("r", "echo", "SendMessage", {}, headers=headers)
                    t0 = time.perf_counter_ns()
                    if label == "authenticate":
                        await auth.authenticate(headers)
                    else:
                        await guard.on_request(ctx)
                    samples.append((time.perf_counter_ns() - t0) / 1000)
                print(
                    f"{mode} {alg} {label:17s} p50 {pct(samples, 0.50):6.1f} µs"
                    f"  p99 {pct(samples, 0.99):6.1f} µs  (n={n})"
                )
        await auth.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    asyncio.run(run(parser.parse_args().n))


if __name__ == "__main__":
    main()
