"""Service-account API keys: hashed at rest (scrypt), scoped, expiring, rotatable.

A key reads ``mgk_<id>_<secret>``: the 16-hex ``id`` finds the record, the 256-bit ``secret``
is checked against ``scrypt(secret, salt)`` in constant time. The store is a JSON file (mode
0600, replaced atomically on every change, re-read when another process changed it) holding
only ids, salts, hashes and metadata — never a key. A key is presented as ``X-API-Key`` (the
configured header) or ``Authorization: Bearer mgk_…``.

Scopes name what a key may call: ``"*"``, ``"<agent>"``, ``"<agent>/*"`` or
``"<agent>/<skill>"``; the authn guard refuses (403) a request outside them. ``rotate`` issues a
new key for the same service account and lets the old one live ``grace_s`` more seconds.

scrypt (n=2^14, r=8, p=1: ~16 MiB, tens of ms) runs in a thread, at most two at a time; a
verified key is remembered (keyed by an HMAC of the key under a per-process secret) for
``verify_cache_s``, so the cost is paid once per key and interval, not per request.

Command line: ``python -m maestro_gateway.identity --store keys.json create|rotate|revoke|list``
(see docs/identity.md).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from maestro_gateway.identity.model import STRENGTH_KEY, Identity, InvalidToken

__all__ = ["KEY_PREFIX", "ApiKeyRecord", "ApiKeyStore", "looks_like_api_key", "scope_allows"]

KEY_PREFIX = "mgk_"
_KEY = re.compile(r"mgk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_R, _P, _DKLEN = 8, 1, 32


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def scope_allows(scopes: Iterable[str], agent_id: str, skill_id: str | None) -> bool:
    """Whether one of ``scopes`` covers a call to ``agent_id`` (and ``skill_id``)."""
    wanted = {"*", agent_id, f"{agent_id}/*"}
    if skill_id:
        wanted.add(f"{agent_id}/{skill_id}")
    return any(s in wanted for s in scopes)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What the store keeps about one key (no key material besides salt and hash)."""

    id: str
    name: str
    salt: str
    hash: str
    n: int
    scopes: tuple[str, ...]
    roles: tuple[str, ...] = ()
    tenant: str | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    replaced_by: str | None = None

    def usable(self, now: float) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


def _scrypt(secret: str, salt: bytes, n: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=_R, p=_P, dklen=_DKLEN, maxmem=256 * 1024 * 1024
    )


class ApiKeyStore:
    def __init__(
        self,
        path: str | Path,
        scrypt_n: int = 2**14,
        verify_cache_s: float = 60.0,
        reload_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._n = scrypt_n
        self._cache_s = verify_cache_s
        self._reload_s = reload_s
        self._clock = clock
        self._records: dict[str, ApiKeyRecord] = {}
        self._mtime: int | None = -1
        self._checked = -1e18
        self._pepper = secrets.token_bytes(32)  # keys the verified-key cache; never stored
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._slots = asyncio.Semaphore(2)
        self.hash_calls = 0

    # -- administration -------------------------------------------------------------------

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        ttl_s: float | None = None,
        roles: Iterable[str] = (),
        tenant: str | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """A new key: returns ``(key, record)``. The key is shown once and not stored."""
        self._load(force=True)
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = self._clock()
        record = ApiKeyRecord(
            id=key_id,
            name=name,
            salt=base64.b64encode(salt).decode(),
            hash=base64.b64encode(_scrypt(secret, salt, self._n)).decode(),
            n=self._n,
            scopes=tuple(scopes),
            roles=tuple(roles),
            tenant=tenant,
            created_at=now,
            expires_at=now + ttl_s if ttl_s is not None else None,
        )
        self._records[key_id] = record
        self._save()
        return f"{KEY_PREFIX}{key_id}_{secret}", record

    def rotate(
        self, key_id: str, grace_s: float = 0.0, ttl_s: float | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """A new key with the old one's name, scopes and roles; the old one ends after grace_s."""
        self._load(force=True)
        old = self._records.get(key_id)
        if old is None:
            raise KeyError(key_id)
        key, new = self.create(old.name, old.scopes, ttl_s, old.roles, old.tenant)
        end = self._clock() + grace_s
        expires = end if old.expires_at is None else min(old.expires_at, end)
        self._records[key_id] = replace(old, expires_at=expires, replaced_by=new.id)
        self._save()
        return key, new

    def revoke(self, key_id: str) -> None:
        self._load(force=True)
        old = self._records.get(key_id)
        if old is None:
            raise KeyError(key_id)
        self._records[key_id] = replace(old, revoked_at=self._clock())
        self._save()

    def list(self) -> list[ApiKeyRecord]:
        self._load(force=True)
        return sorted(self._records.values(), key=lambda r: r.created_at)

    # -- the request path -----------------------------------------------------------------

    async def verify(self, presented: str) -> Identity:
        m = _KEY.fullmatch(presented)
        if m is None:
            raise InvalidToken("malformed API key")
        self._load()
        key_id, secret = m.groups()
        record = self._records.get(key_id)
        now = self._clock()
        if record is None or not record.usable(now):
            raise InvalidToken("API key unknown, expired or revoked")
        mark = hmac.new(self._pepper, presented.encode(), "sha256").digest()
        cached = self._verified.get(mark)
        if cached is None or cached[0] != key_id or cached[1] <= now:
            async with self._slots:
                self.hash_calls += 1
                digest = await asyncio.to_thread(
                    _scrypt, secret, base64.b64decode(record.salt), record.n
                )
            if not hmac.compare_digest(digest, base64.b64decode(record.hash)):
                raise InvalidToken("API key unknown, expired or revoked")
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[mark] = (key_id, now + self._cache_s)
        return Identity(
            kind="service",
            subject=record.name,
            issuer="maestro-gateway:apikeys",
            principal=f"apikey:{record.id}",
            token_id=f"apikey:{record.id}",
            method="apikey",
            roles=record.roles,
            scopes=record.scopes,
            tenant=record.tenant,
            expires_at=int(record.expires_at) if record.expires_at is not None else None,
            strength=STRENGTH_KEY,
        )

    # -- the file ------------------------------------------------------------------------

    def _load(self, force: bool = False) -> None:
        mono = time.monotonic()
        if not force and mono - self._checked < self._reload_s:
            return
        self._checked = mono
        try:
            mtime: int | None = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        if mtime is None:
            self._records, self._mtime = {}, None
            return
        doc = orjson.loads(self.path.read_bytes())  # OSError/ValueError: the caller fails closed
        self._records = {r["id"]: _record(r) for r in doc.get("keys", [])}
        self._mtime = mtime

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": 1, "keys": [asdict(r) for r in self._records.values()]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)
        self._mtime = os.stat(self.path).st_mtime_ns


def _record(raw: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        **{**raw, "scopes": tuple(raw.get("scopes", ())), "roles": tuple(raw.get("roles", ()))}
    )
