"""Rate limits on playbook actions: per playbook and global, so no playbook locks out everyone.

Dry runs keep their own ledger: they are checked against the same caps (so a dry run shows
what would really happen) without using up the budget of live playbooks.
"""

from __future__ import annotations

from collections import deque

from maestro_gateway.playbooks.model import PlaybookConfig, PlaybookLimits

# Which cap an action type counts against, and what it is keyed by.
CAP_OF = {
    "block_principal": "principals",
    "require_step_up": "principals",
    "require_approval": "principals",
    "revoke_token": "principals",
    "block_source": "sources",
    "suspend_agent": "agents",
}


class Ledger:
    def __init__(self, limits: PlaybookLimits) -> None:
        self.limits = limits
        self.actions: deque[float] = deque()
        self.firings: dict[str, deque[float]] = {}
        self.subjects: dict[str, dict[str, float]] = {"principals": {}, "sources": {}, "agents": {}}

    def _caps(self) -> dict[str, int]:
        lim = self.limits
        return {
            "principals": lim.max_blocked_principals,
            "sources": lim.max_blocked_sources,
            "agents": lim.max_suspended_agents,
        }

    def fire(self, playbook: PlaybookConfig, now: float) -> str | None:
        """Count one firing of ``playbook``; the reason it is refused, or None."""
        times = self.firings.setdefault(playbook.name, deque())
        while times and now - times[0] > playbook.rate_window_s:
            times.popleft()
        if len(times) >= playbook.max_actions:
            return (
                f"playbook rate limit: {playbook.max_actions} firings per "
                f"{playbook.rate_window_s:g}s reached"
            )
        times.append(now)
        return None

    def allow(self, action_type: str, subject_key: str, now: float) -> str | None:
        """Count one action; the reason it is refused (a global cap is reached), or None."""
        window = self.limits.window_s
        while self.actions and now - self.actions[0] > window:
            self.actions.popleft()
        if len(self.actions) >= self.limits.max_actions:
            return f"global cap: {self.limits.max_actions} actions per {window:g}s reached"
        cap_name = CAP_OF.get(action_type)
        if cap_name is not None:
            seen = self.subjects[cap_name]
            for key in [k for k, t in seen.items() if now - t > window]:
                del seen[key]
            cap = self._caps()[cap_name]
            if subject_key not in seen and len(seen) >= cap:
                return f"global cap: {cap} distinct {cap_name} acted upon per {window:g}s reached"
            seen[subject_key] = now
        self.actions.append(now)
        return None
