"""The OpenAPI 3.1 document of the admin API, served at /admin/v1/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


_ERRORS = {
    "400": _resp("malformed request", _ERROR),
    "401": _resp("no valid admin credential (admin token, loopback, or an admin JWT)", _ERROR),
    "403": _resp("not permitted by policy (Cedar decision id in the message)", _ERROR),
    "404": _resp("no such agent", _ERROR),
    "503": _resp("a store or the audit log is unavailable; nothing was changed", _ERROR),
}


def _op(summary: str, *params: str, body: bool = False) -> dict[str, Any]:
    """A JSON operation of the approvals, grants, playbooks and detection routes."""
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in params
        ],
        "responses": {"200": _resp("result", {"type": "object"}), **_ERRORS},
    }
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return op


_MORE_PATHS: dict[str, Any] = {
    "/admin/v1/approvals": {"get": _op("Held requests (C3), newest first; ?state=&limit=")},
    "/admin/v1/approvals/{hold_id}": {
        "get": _op("The exact held payload with its risk findings", "hold_id")
    },
    "/admin/v1/approvals/{hold_id}/approve": {
        "post": _op(
            "Approve a held request (approver with MFA; not the requester)", "hold_id", body=True
        )
    },
    "/admin/v1/approvals/{hold_id}/deny": {
        "post": _op("Deny a held request", "hold_id", body=True)
    },
    "/admin/v1/grants": {
        "get": _op("Just-in-time grants (C17)"),
        "post": _op("Issue a grant (approver with MFA; never to oneself)", body=True),
    },
    "/admin/v1/grants/{grant_id}": {"get": _op("One grant", "grant_id")},
    "/admin/v1/grants/{grant_id}/revoke": {"post": _op("Revoke a grant", "grant_id", body=True)},
    "/admin/v1/playbooks": {"get": _op("Response playbooks (C21)")},
    "/admin/v1/playbooks/actions": {"get": _op("Actions taken by playbooks")},
    "/admin/v1/playbooks/actions/{action_id}/revert": {
        "post": _op("Revert an action (audited)", "action_id", body=True)
    },
    "/admin/v1/playbooks/enforcement": {"get": _op("Measures in force")},
    "/admin/v1/detect/findings": {"get": _op("Recent behavioural findings (C15)")},
    "/admin/v1/detect/stats": {"get": _op("Detector statistics")},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Maestro Gateway admin API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                    }
                },
            },
            "Agent": {
                "type": "object",
                "properties": {
                    "agent_id": {"type": "string"},
                    "state": {"enum": ["pending", "active", "suspended", "retired"]},
                    "active_version": {"type": ["integer", "null"]},
                    "latest_version": {"type": "integer"},
                },
            },
            "AgentVersion": {"type": "object", "additionalProperties": True},
            "Register": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
                    "card_url": {"type": "string", "format": "uri"},
                    "card": {"type": "object", "description": "An A2A Agent Card"},
                    "upstream_url": {"type": "string", "format": "uri"},
                    "tenant": {"type": "string"},
                    "expected_spiffe_id": {
                        "type": "string",
                        "description": "The SPIFFE ID the agent must present over mTLS",
                    },
                },
            },
            "StateChange": {"type": "object", "properties": {"version": {"type": "integer"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/admin/v1/agents": {
            "get": {
                "summary": "List agents",
                "parameters": [{"name": "state", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _resp("agents", {"type": "object"}), **_ERRORS},
            },
            "post": {
                "summary": "Register an agent, or a new version of its card (state: pending)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Register"}}
                    },
                },
                "responses": {
                    "201": _resp("the new version", {"$ref": "#/components/schemas/AgentVersion"}),
                    "422": _resp("the card is invalid or its signature does not verify", _ERROR),
                    **_ERRORS,
                },
            },
        },
        "/admin/v1/agents/{agent_id}": {
            "get": {
                "summary": "An agent with all its versions",
                "parameters": [_ID],
                "responses": {"200": _resp("the agent", {"type": "object"}), **_ERRORS},
            }
        },
        "/admin/v1/agents/{agent_id}/events": {
            "get": {
                "summary": "Every change to an agent: who, what, when, before/after hashes",
                "parameters": [_ID],
                "responses": {"200": _resp("events", {"type": "object"}), **_ERRORS},
            }
        },
        **{
            f"/admin/v1/agents/{{agent_id}}/{action}": {
                "post": {
                    "summary": f"{action.capitalize()} an agent (optionally one version)",
                    "parameters": [_ID],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/StateChange"}
                            }
                        }
                    },
                    "responses": {
                        "200": _resp("the agent", {"$ref": "#/components/schemas/Agent"}),
                        "409": _resp("transition not allowed", _ERROR),
                        **_ERRORS,
                    },
                }
            }
            for action in ("activate", "suspend", "retire")
        },
        **_MORE_PATHS,
    },
}
