"""C21 automated response playbooks: findings trigger audited, rate-limited, reversible actions.

The engine lives in ``maestro_gateway.playbooks.engine`` (it depends on the registry); this
package's top level holds only the configuration model and the enforcement state, which the
configuration and the ``enforce`` guard import. See docs/playbooks.md.
"""

from maestro_gateway.playbooks.enforcement import EnforcementState
from maestro_gateway.playbooks.model import PlaybookConfig, PlaybooksConfig

__all__ = ["EnforcementState", "PlaybookConfig", "PlaybooksConfig"]
