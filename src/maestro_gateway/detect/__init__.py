"""C5/C15 behavioural detection at the gateway (threats T2 impersonation, T7 policy evasion).

Per principal and per agent: EWMA rate baselines with z-scores, bursts of denials, first-time
access to an agent or skill, access outside usual hours, many distinct agents in a short window,
and token reuse from a new source. See docs/anomaly-detection.md.
"""

from maestro_gateway.detect.config import DetectConfig
from maestro_gateway.detect.model import FINDING_TYPES, Finding, FindingType, Observation

__all__ = ["FINDING_TYPES", "DetectConfig", "Finding", "FindingType", "Observation"]
