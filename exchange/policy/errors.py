"""Errors of the policy core: agreement and restriction files, compiling them, and consent artefacts.

::

    ExchangeError
    └── PolicyError                     agreements, restrictions, bundles, consent
        ├── PolicyFileError             a policy file cannot be read or validated (.path, .line)
        ├── PolicyCompileError          policies that do not fit the types and agencies they name (.issues)
        │   └── PolicyConflictError     ... among them two agreements that claim the same ground
        └── ConsentError                a consent artefact that cannot be applied
            ├── ConsentTransitionError  a refused change (revoked is final, sequence going backwards)
            └── ConsentSignatureError   a missing or invalid signature of the consent manager
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from exchange.errors import ExchangeError

if TYPE_CHECKING:
    from exchange.policy.checks import PolicyIssue

__all__ = [
    "ConsentError",
    "ConsentSignatureError",
    "ConsentTransitionError",
    "PolicyCompileError",
    "PolicyConflictError",
    "PolicyError",
    "PolicyFileError",
]


class PolicyError(ExchangeError):
    """Something about agreements, restrictions, policy bundles or consent is wrong."""


class PolicyFileError(PolicyError):
    """A policy file cannot be read or validated; ``path`` and ``line`` (1-based, 0 if unknown) say where."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")


class PolicyCompileError(PolicyError):
    """The policies name types, fields or agencies that do not exist, or break a rule between them."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(issues)
        lines = "; ".join(str(issue) for issue in self.issues)
        super().__init__(f"{len(self.issues)} policy problem(s): {lines}")


class PolicyConflictError(PolicyCompileError):
    """Two agreements for the same recipient, type and purpose are valid at the same time (among ``issues``)."""


class ConsentError(PolicyError):
    """A consent artefact cannot be applied to the consent state."""


class ConsentTransitionError(ConsentError):
    """The artefact would make a change the consent life cycle forbids (e.g. reactivating a revoked consent)."""


class ConsentSignatureError(ConsentError):
    """The artefact carries no signature, or the consent manager's signature does not verify."""
