"""What a consent may cover: the checks the manager runs on a grant before it signs anything.

A consent is only worth issuing if some agreement can use it: the recipient must be an agency in the registry,
and for every record type there must be a consent-based agreement of that recipient and purpose whose validity
window meets the consent's. Named fields must be released by such an agreement. Pure: registry, catalogue and
compiled policies are passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from exchange.consent.errors import ConsentRequestError
from exchange.policy import CompiledAgreement, PolicyIndex
from exchange.registry import Registry, UnknownAgencyError
from exchange.schemas import Catalogue, UnknownSchemaError

__all__ = ["check_grant", "consent_agreements"]

_EXCHANGE_DOMAIN = "exchange."


def consent_agreements(policies: PolicyIndex, recipient: str, purpose: str,
                       record_type: str) -> list[CompiledAgreement]:
    """The consent-based agreements under which ``recipient`` receives ``record_type`` for ``purpose``."""
    return [
        compiled for compiled in policies.agreements_for(record_type)
        if compiled.consent_based
        and compiled.agreement.recipient == recipient
        and compiled.agreement.purpose == purpose
    ]


def check_grant(registry: Registry, catalogue: Catalogue, policies: PolicyIndex, *, recipient: str, purpose: str,
                record_types: Sequence[str], fields: Sequence[str] | None, start: datetime,
                expiry: datetime) -> None:
    """Return None if a consent with this scope can be used by some agreement; raise
    :class:`ConsentRequestError` naming the first check that failed otherwise."""
    if expiry <= start:
        raise ConsentRequestError(f"the consent must expire after it starts ({_show(start)} .. {_show(expiry)})")
    try:
        registry.agency(recipient)
    except UnknownAgencyError:
        raise ConsentRequestError(f"recipient {recipient!r} is not an agency in the registry") from None
    if not record_types:
        raise ConsentRequestError("a consent covers at least one record type")
    usable_fields: set[str] = set()
    for record_type in record_types:
        if record_type.startswith(_EXCHANGE_DOMAIN):
            raise ConsentRequestError(f"{record_type} is the exchange's own record type; it is never shared")
        try:
            catalogue.current(record_type)
        except UnknownSchemaError:
            raise ConsentRequestError(f"unknown record type {record_type!r}") from None
        matching = consent_agreements(policies, recipient, purpose, record_type)
        if not matching:
            raise ConsentRequestError(_no_agreement(policies, recipient, purpose, record_type))
        in_window = [c for c in matching if c.valid_from < expiry and start < c.valid_until]
        if not in_window:
            windows = ", ".join(f"{c.agreement.id} {_show(c.valid_from)} .. {_show(c.valid_until)}" for c in matching)
            raise ConsentRequestError(
                f"no consent-based agreement for {recipient} on {record_type} ({purpose}) is valid between "
                f"{_show(start)} and {_show(expiry)}: {windows}"
            )
        for compiled in in_window:
            usable_fields.update(compiled.fields)
    if fields is not None:
        if not fields:
            raise ConsentRequestError("an empty field list would release nothing; leave it out to cover every field")
        unused = sorted(set(fields) - usable_fields)
        if unused:
            raise ConsentRequestError(
                f"no matching agreement releases field(s) {', '.join(unused)}; they can be: "
                f"{', '.join(sorted(usable_fields))}"
            )


def _no_agreement(policies: PolicyIndex, recipient: str, purpose: str, record_type: str) -> str:
    purposes = sorted({
        c.agreement.purpose for c in policies.agreements_for(record_type)
        if c.consent_based and c.agreement.recipient == recipient
    })
    hint = (f"; consent-based purposes of {recipient} for it: {', '.join(purposes)}" if purposes
            else f"; {recipient} has no consent-based agreement on it")
    return f"no consent-based agreement lets {recipient} receive {record_type} for {purpose!r}{hint}"


def _show(moment: datetime) -> str:
    if moment.year == datetime.max.year:
        return "open end"
    return moment.isoformat().replace("+00:00", "Z")
