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
    "401": _resp("admin token missing or wrong", _ERROR),
    "404": _resp("no such agent", _ERROR),
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
    },
}
