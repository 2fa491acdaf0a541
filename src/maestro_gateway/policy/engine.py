"""C8 policy-as-code: Cedar decisions over an explicit input, with a decision record each.

The policy set is parsed once (``cedarpy.PolicySet``) and swapped atomically on reload: a
reload that does not parse leaves the running set in place. Every decision is a value
(:class:`Decision`) that carries its record: a decision id, the ids of the policies that
determined it, the inputs with secrets masked, the result and the bundle version (the SHA-256
of the policy text, or the git commit of a policy bundle).

Undecided means deny: no permit, any forbid, an evaluation error, or an engine failure all
answer ``allowed = False``. Cost (``scripts/bench_policy.py``): see docs/authorization.md.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy
import orjson

log = logging.getLogger("maestro_gateway.policy")

__all__ = ["Decision", "PolicyBundle", "PolicyEngine", "PolicyError", "default_policy_text"]

_DEFAULT = Path(__file__).with_name("default.cedar")
_SECRET_KEYS = ("token", "secret", "password", "authorization", "cookie", "assertion", "key")


class PolicyError(Exception):
    """A policy bundle that cannot be used (parse error, missing file)."""


def default_policy_text() -> str:
    return _DEFAULT.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """A parsed policy set and the version it is known by."""

    text: str
    policies: Any  # cedarpy.PolicySet
    version: str
    source: str

    @staticmethod
    def parse(text: str, source: str, version: str | None = None) -> PolicyBundle:
        try:
            parsed = cedarpy.PolicySet.from_str(text)
        except ValueError as exc:
            raise PolicyError(f"{source}: Cedar policies do not parse: {exc}") from None
        digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
        return PolicyBundle(text, parsed, version or digest, source)

    @staticmethod
    def from_files(paths: Iterable[str], include_default: bool = True) -> PolicyBundle:
        parts: list[str] = [default_policy_text()] if include_default else []
        names: list[str] = ["default"] if include_default else []
        for name in paths:
            p = Path(name)
            files = sorted(p.glob("*.cedar")) if p.is_dir() else [p]
            for f in files:
                try:
                    parts.append(f.read_text(encoding="utf-8"))
                except OSError as exc:
                    raise PolicyError(f"{f}: cannot read: {exc.strerror}") from None
                names.append(str(f))
        if not parts:
            raise PolicyError("no policies: the default set is excluded and no files are given")
        return PolicyBundle.parse("\n".join(parts), "+".join(names))


@dataclass(frozen=True, slots=True)
class Decision:
    """One authorization decision and its record."""

    allowed: bool
    decision_id: str
    action: str
    policies: tuple[str, ...]
    errors: tuple[str, ...]
    bundle: str
    raw_inputs: dict[str, Any] = field(repr=False)

    @property
    def inputs(self) -> dict[str, Any]:
        """The inputs with secrets masked (computed when a record is written)."""
        return dict(mask(self.raw_inputs))

    def record(self) -> dict[str, Any]:
        """The decision record, for the structured log and the audit log."""
        return {
            "type": "authz.decision",
            "decision_id": self.decision_id,
            "result": "allow" if self.allowed else "deny",
            "action": self.action,
            "policies": list(self.policies),
            "errors": list(self.errors),
            "bundle": self.bundle,
            "input": self.inputs,
        }


_secret_key_cache: dict[str, bool] = {}


def _secret_key(key: object) -> bool:
    k = str(key)
    hit = _secret_key_cache.get(k)
    if hit is None:
        hit = any(s in k.lower() for s in _SECRET_KEYS)
        if len(_secret_key_cache) < 4096:
            _secret_key_cache[k] = hit
    return hit


def mask(value: Any, depth: int = 0) -> Any:
    """The value with anything under a secret-looking key replaced by ``***``."""
    if depth > 8:
        return "…"
    if isinstance(value, Mapping):
        return {k: "***" if _secret_key(k) else mask(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, depth + 1) for v in value[:50]]
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    return value


class PolicyEngine:
    """Decides requests against the current bundle; ``swap`` replaces it atomically."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self._bundle = bundle
        self._entity_cache: dict[bytes, Any] = {}
        self._decisions: dict[tuple[Any, ...], tuple[bool, tuple[str, ...], tuple[str, ...]]] = {}

    @property
    def bundle(self) -> PolicyBundle:
        return self._bundle

    def swap(self, bundle: PolicyBundle) -> None:
        """Install a new, already parsed bundle; requests in flight finish on the old one."""
        self._bundle = bundle
        log.info("policy bundle installed", extra={"bundle": bundle.version})

    def decide(
        self,
        principal: dict[str, Any],
        action: str,
        resource: dict[str, Any],
        context: dict[str, Any],
        entities: list[dict[str, Any]],
    ) -> Decision:
        """Decide one request. ``principal`` and ``resource`` are ``{"type", "id"}`` uids;
        ``entities`` hold their attributes (and parents). Any failure is a deny."""
        bundle = self._bundle
        context_json = orjson.dumps(context)
        entities_json = orjson.dumps(entities)
        request = {
            "principal": principal,
            "action": {"type": "Action", "id": action},
            "resource": resource,
            "context": context_json.decode(),
        }
        inputs = {"request": {**request, "context": context}, "entities": entities}
        decision_id = uuid.uuid4().hex
        # Cedar is deterministic: the same bundle, request and entities give the same answer.
        key = (
            bundle.version,
            action,
            orjson.dumps(principal),
            orjson.dumps(resource),
            context_json,
            entities_json,
        )
        hit = self._decisions.get(key)
        if hit is not None:
            allowed, reasons, errors = hit
            return Decision(allowed, decision_id, action, reasons, errors, bundle.version, inputs)
        try:
            handle = self._entities(entities_json)
            result = cedarpy.is_authorized(request, bundle.policies, handle)
            allowed = result.decision == cedarpy.Decision.Allow
            diagnostics = result.diagnostics
            ids = diagnostics.id_annotations_by_reason
            reasons = tuple(ids.get(r, r) for r in diagnostics.reasons)
            errors = tuple(str(e) for e in diagnostics.errors)
        except Exception as exc:  # the engine failing is a decision too: deny
            log.error("policy evaluation failed", extra={"error": repr(exc), "action": action})
            return Decision(
                False,
                decision_id,
                action,
                (),
                (f"engine failure: {exc!r}",),
                bundle.version,
                inputs,
            )
        if errors:
            allowed = False  # an evaluation error never lets a request through
        if len(self._decisions) >= 8192:
            self._decisions.clear()
        self._decisions[key] = (allowed, reasons, errors)
        return Decision(allowed, decision_id, action, reasons, errors, bundle.version, inputs)

    def _entities(self, key: bytes) -> Any:
        """A parsed entity set, cached: the same caller on the same agent parses once."""
        handle = self._entity_cache.get(key)
        if handle is None:
            handle = cedarpy.Entities.from_json_str(key.decode())
            if len(self._entity_cache) >= 4096:
                self._entity_cache.clear()
            self._entity_cache[key] = handle
        return handle
