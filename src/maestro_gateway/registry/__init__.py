"""The agent registry: agents, card versions and their lifecycle; card validation and signing.

No HTTP here: the admin API builds on :class:`RegistryStore` and the card functions.
"""

from maestro_gateway.registry.cards import (
    MAX_CARD_BYTES,
    card_endpoint,
    card_sha256,
    rewrite_card_for_gateway,
    validate_card,
)
from maestro_gateway.registry.models import (
    AgentRecord,
    AgentState,
    AgentVersion,
    Conflict,
    InvalidArgument,
    InvalidCard,
    InvalidTransition,
    NotFound,
    ProtocolVersion,
    RegistryError,
    RegistryEvent,
)
from maestro_gateway.registry.postgres import PostgresRegistryStore
from maestro_gateway.registry.signing import GatewaySigner, sign_card, verify_card_signatures
from maestro_gateway.registry.sqlite import SqliteRegistryStore
from maestro_gateway.registry.store import RegistryStore, open_store

__all__ = [
    "MAX_CARD_BYTES",
    "AgentRecord",
    "AgentState",
    "AgentVersion",
    "Conflict",
    "GatewaySigner",
    "InvalidArgument",
    "InvalidCard",
    "InvalidTransition",
    "NotFound",
    "PostgresRegistryStore",
    "ProtocolVersion",
    "RegistryError",
    "RegistryEvent",
    "RegistryStore",
    "SqliteRegistryStore",
    "card_endpoint",
    "card_sha256",
    "open_store",
    "rewrite_card_for_gateway",
    "sign_card",
    "validate_card",
    "verify_card_signatures",
]
