"""The A2A 1.0 method names, the canonical names every request is handled under."""

from __future__ import annotations

from typing import Literal, get_args

A2AMethod = Literal[
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
]
METHODS_10: frozenset[str] = frozenset(get_args(A2AMethod))
STREAMING_METHODS: frozenset[str] = frozenset({"SendStreamingMessage", "SubscribeToTask"})
