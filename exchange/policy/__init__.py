"""Agreements, restrictions, consent state and the decision engine — the pure policy core.

Build an index once, then decide per event::

    policy_set = load_policies(Path("policies"))                 # the file edge (files.py)
    index = compile_policies(policy_set, types, agencies, registry)
    decisions = decide(index, EventFacts(...), consent_state)    # pure: no I/O, no clock

``types`` maps each record type to a :class:`TypeInfo` (fields in schema order with their classification, key
field and kind), built by the caller from the schema catalogue; ``agencies`` are the registry's agency ids;
``registry`` is the registry's canonical dict, which becomes part of the policy bundle.
"""

from __future__ import annotations

from exchange.policy.bundle import PolicyBundle, bundle_id, make_bundle, read_bundle
from exchange.policy.canonical import canonical_json
from exchange.policy.checks import PolicyIssue, find_issues
from exchange.policy.compiler import CompiledAgreement, PolicyIndex, compile_policies
from exchange.policy.consent import (
    NO_CONSENTS,
    ConsentArtefact,
    ConsentDecision,
    ConsentRef,
    ConsentState,
    ConsentStatus,
    ConsentView,
    Signer,
    Verifier,
)
from exchange.policy.decision import RECIPIENT_PSEUDONYM, Decision, EventFacts, Outcome
from exchange.policy.engine import conditions_held, decide, held_mask, held_restrictions
from exchange.policy.errors import (
    ConsentError,
    ConsentSignatureError,
    ConsentTransitionError,
    PolicyCompileError,
    PolicyConflictError,
    PolicyError,
    PolicyFileError,
)
from exchange.policy.files import PolicyScan, load_policies, scan_policies
from exchange.policy.models import PUBLIC_RECIPIENT, Agreement, Condition, LegalBasis, PolicySet, Restriction
from exchange.policy.typeinfo import TypeInfo

__all__ = [
    "NO_CONSENTS",
    "PUBLIC_RECIPIENT",
    "RECIPIENT_PSEUDONYM",
    "Agreement",
    "CompiledAgreement",
    "Condition",
    "ConsentArtefact",
    "ConsentDecision",
    "ConsentError",
    "ConsentRef",
    "ConsentSignatureError",
    "ConsentState",
    "ConsentStatus",
    "ConsentTransitionError",
    "ConsentView",
    "Decision",
    "EventFacts",
    "LegalBasis",
    "Outcome",
    "PolicyBundle",
    "PolicyCompileError",
    "PolicyConflictError",
    "PolicyError",
    "PolicyFileError",
    "PolicyIndex",
    "PolicyIssue",
    "PolicyScan",
    "PolicySet",
    "Restriction",
    "Signer",
    "TypeInfo",
    "Verifier",
    "bundle_id",
    "canonical_json",
    "compile_policies",
    "conditions_held",
    "decide",
    "find_issues",
    "held_mask",
    "held_restrictions",
    "load_policies",
    "make_bundle",
    "read_bundle",
    "scan_policies",
]
