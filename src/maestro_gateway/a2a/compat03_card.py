"""Agent cards between A2A 0.3 and 1.0, as plain dicts (a building block of `compat03`)."""

from __future__ import annotations

import re
from typing import Any

from maestro_gateway.a2a.compat03_parts import (
    Malformed,
    Obj,
    arr,
    obj,
    opt,
    put_bool,
    put_list,
    put_meta,
    put_str,
    put_strs,
    req_str,
    show,
    str_or_empty,
    strs,
)

_SCHEMES = {  # 0.3 `type` -> (1.0 wrapper, required strings 0.3 -> 1.0 name, optional strings)
    "apiKey": ("apiKeySecurityScheme", {"in": "location", "name": "name"}, ()),
    "http": ("httpAuthSecurityScheme", {"scheme": "scheme"}, ("bearerFormat",)),
    "oauth2": ("oauth2SecurityScheme", {}, ("oauth2MetadataUrl",)),
    "openIdConnect": ("openIdConnectSecurityScheme", {"openIdConnectUrl": "openIdConnectUrl"}, ()),
    "mutualTLS": ("mtlsSecurityScheme", {}, ()),
}
_SCHEME_TYPES = {v[0]: k for k, v in _SCHEMES.items()}
_FLOWS = {  # 0.3 may list several flows, 1.0 holds one (a oneof; deviceCode is 1.0 only)
    "authorizationCode": ("authorizationUrl", "tokenUrl", "refreshUrl"),
    "clientCredentials": ("tokenUrl", "refreshUrl"),
    "implicit": ("authorizationUrl", "refreshUrl"),
    "password": ("tokenUrl", "refreshUrl"),
}


def _flows(value: Any, to_10: bool) -> Obj:
    flows = obj(value, "flows")
    out: Obj = {}
    for name, urls in _FLOWS.items():
        if flows.get(name) is not None:
            src = obj(flows[name], name)
            scopes = obj(opt(src, "scopes", {}), "scopes")
            if not all(isinstance(v, str) for v in scopes.values()):
                raise Malformed(f"{name}.scopes: every scope needs a string description")
            flow: Obj = {"scopes": scopes}
            for url in urls:
                put_str(src, url, flow)
            out = {name: flow} if to_10 else {**out, name: flow}  # 1.0: the last one wins (SDK)
    return out


def _scheme(value: Any, to_10: bool) -> Obj:
    s = obj(value, "security scheme")
    if to_10:
        kind: Any = s.get("type")
    elif len(keys := [k for k in _SCHEME_TYPES if s.get(k) is not None]) == 1:
        kind, s = _SCHEME_TYPES[keys[0]], obj(s[keys[0]], keys[0])
    else:
        raise Malformed("a security scheme must hold exactly one scheme")
    if not isinstance(kind, str) or kind not in _SCHEMES:
        raise Malformed(f"unknown security scheme type {show(kind)}")
    wrapper, required, optional = _SCHEMES[kind]
    out: Obj = {} if to_10 else {"type": kind}
    for k03, k10 in required.items():
        out[k10 if to_10 else k03] = req_str(s, k03 if to_10 else k10)
    for key in (*optional, "description"):
        put_str(s, key, out)
    if kind == "apiKey" and out["location" if to_10 else "in"] not in ("cookie", "header", "query"):
        raise Malformed("apiKey 'in' must be cookie, header or query")
    if kind == "oauth2":
        out["flows"] = _flows(s.get("flows"), to_10)
    return {wrapper: out} if to_10 else out


def _requirements(value: Any, to_10: bool) -> list[Obj]:
    """0.3 `[{scheme: [scopes]}]` <-> 1.0 `[{schemes: {scheme: {list: [scopes]}}}]`."""
    if to_10:
        return [
            {"schemes": {k: {"list": strs(v, k)} for k, v in obj(r, "security").items()}}
            for r in arr(value, "security")
        ]
    out = []
    for r in arr(value, "securityRequirements"):
        schemes = obj(opt(obj(r, "securityRequirement"), "schemes", {}), "schemes")
        out.append({k: strs(opt(obj(v, k), "list", []), k) for k, v in schemes.items()})
    return out


def _put_requirements(src: Obj, dst: Obj, to_10: bool) -> None:
    key, out = (
        ("security", "securityRequirements") if to_10 else ("securityRequirements", "security")
    )
    if src.get(key) is not None:
        dst[out] = _requirements(src[key], to_10)


def _skill(value: Any, to_10: bool) -> Obj:
    s = obj(value, "skill")
    out: Obj = {k: req_str(s, k) for k in ("id", "name", "description")}
    out["tags"] = strs(opt(s, "tags", []), "tags")
    for key in ("examples", "inputModes", "outputModes"):
        put_strs(s, key, out)
    _put_requirements(s, out, to_10)
    return out


def _extension(value: Any, to_10: bool) -> Obj:
    e = obj(value, "extension")
    out: Obj = {"uri": str_or_empty(e, "uri")}
    put_str(e, "description", out)
    put_bool(e, "required", out)
    put_meta(e, out, "params")
    return out


def _signature(value: Any, to_10: bool) -> Obj:
    s = obj(value, "signature")
    out: Obj = {"protected": req_str(s, "protected"), "signature": req_str(s, "signature")}
    put_meta(s, out, "header")
    return out


def _is_03(version: str) -> bool:
    """0.3 <= version < 1.0, or no version stated (as the SDK)."""
    found = re.match(r"v?(\d+)\.(\d+)", version, re.ASCII)
    return not version or (found is not None and int(found[1]) == 0 and int(found[2]) >= 3)


def _interface(i: Any, to_10: bool) -> Obj:
    i = obj(i, "interface")
    if to_10:  # additionalInterfaces of a 0.3 card speak 0.3
        return {
            "url": req_str(i, "url"),
            "protocolBinding": req_str(i, "transport"),
            "protocolVersion": "0.3",
        }
    return {"url": req_str(i, "url"), "transport": req_str(i, "protocolBinding")}


def _interfaces(c: Obj, out: Obj, to_10: bool) -> None:
    if to_10:
        primary = {
            "url": req_str(c, "url"),
            "protocolBinding": str_or_empty(c, "preferredTransport") or "JSONRPC",
            "protocolVersion": str_or_empty(c, "protocolVersion") or "0.3.0",
        }
        more = arr(opt(c, "additionalInterfaces", []), "additionalInterfaces")
        out["supportedInterfaces"] = [primary, *(_interface(i, True) for i in more)]
        return
    # Keep the interfaces that speak 0.3 (or state no version), as the SDK. Where there are none
    # the SDK raises; we keep them all, labelled 0.3, as the gateway translates for 0.3 clients.
    found = arr(opt(c, "supportedInterfaces", []), "supportedInterfaces")
    legacy = [i for i in found if _is_03(str_or_empty(obj(i, "interface"), "protocolVersion"))]
    if not (chosen := legacy or found):
        raise Malformed("agent card has no supportedInterfaces")
    primary = _interface(chosen[0], False)
    out["url"], out["preferredTransport"] = primary["url"], primary["transport"]
    version = str_or_empty(chosen[0], "protocolVersion") if legacy else ""
    out["protocolVersion"] = version or "0.3"
    if len(chosen) > 1:
        out["additionalInterfaces"] = [_interface(i, False) for i in chosen[1:]]


def card(value: Any, to_10: bool) -> Obj:
    c = obj(value, "agent card")
    out: Obj = {k: req_str(c, k) for k in ("name", "description", "version")}
    _interfaces(c, out, to_10)
    if c.get("provider") is not None:
        prov = obj(c["provider"], "provider")
        out["provider"] = {
            "url": req_str(prov, "url"),
            "organization": req_str(prov, "organization"),
        }
    put_str(c, "documentationUrl", out)
    put_str(c, "iconUrl", out)
    caps = obj(opt(c, "capabilities", {}), "capabilities")
    cap_out: Obj = {}
    put_bool(caps, "streaming", cap_out)
    put_bool(caps, "pushNotifications", cap_out)
    put_list(caps, "extensions", cap_out, _extension, to_10)
    if to_10:
        put_bool(c, "supportsAuthenticatedExtendedCard", cap_out, "extendedAgentCard")
    else:
        put_bool(caps, "extendedAgentCard", out, "supportsAuthenticatedExtendedCard")
    out["capabilities"] = cap_out
    if c.get("securitySchemes") is not None:
        schemes = obj(c["securitySchemes"], "securitySchemes")
        out["securitySchemes"] = {k: _scheme(v, to_10) for k, v in schemes.items()}
    _put_requirements(c, out, to_10)
    for key in ("defaultInputModes", "defaultOutputModes"):
        out[key] = strs(opt(c, key, []), key)
    out["skills"] = [_skill(s, to_10) for s in arr(opt(c, "skills", []), "skills")]
    put_list(c, "signatures", out, _signature, to_10)
    return out
