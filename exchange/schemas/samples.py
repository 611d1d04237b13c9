"""Realistic, deterministic sample records for every record type, for tests, demos and benchmarks.

Every value comes from the ``random.Random`` passed in, so a seed reproduces a data set. Records match the
*current* revision of their type; for an older revision keep only that revision's ``field_names``. The people,
companies and vehicles are invented; person ids follow the 11-digit national code layout (century and sex digit,
birth date, serial, check digit).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["SAMPLE_TYPES", "sample_person_id", "sample_record", "subject_ref_for"]

_GIVEN_F = ("Mari", "Liis", "Anna", "Kadri", "Laura", "Sofia", "Eva", "Helena", "Elisabeth", "Maria", "Kertu", "Triin")
_GIVEN_M = ("Jaan", "Kristjan", "Mihkel", "Andres", "Martin", "Oliver", "Karl", "Markus", "Rasmus", "Robin", "Tõnu")
_FAMILY = ("Tamm", "Saar", "Sepp", "Mägi", "Kask", "Kukk", "Rebane", "Ilves", "Pärn", "Koppel", "Lepik", "Kallas",
           "Oja", "Luik", "Lill", "Karu", "Ivanov", "Smirnova", "Virtanen", "Ozols")
# (municipality code, postal code prefix, streets)
_PLACES = (
    ("0784", "10", ("Narva mnt", "Pärnu mnt", "Tartu mnt", "Kadaka tee", "Mustamäe tee", "Sõpruse pst")),
    ("0784", "13", ("Akadeemia tee", "Ehitajate tee", "Vilde tee")),
    ("0793", "50", ("Riia", "Rüütli", "Vanemuise", "Kalda tee", "Ropka tee")),
    ("0624", "80", ("Rüütli", "Riia mnt", "Tallinna mnt", "Papiniidu")),
    ("0511", "20", ("Tallinna mnt", "Kreenholmi", "Joala", "Rakvere")),
    ("0899", "71", ("Tallinna", "Riia mnt", "Uus")),
    ("0663", "44", ("Pikk", "Tallinna", "Kastani pst")),
)
_CITIZENSHIP = (("EST", 85), ("LVA", 3), ("FIN", 3), ("RUS", 4), ("UKR", 4), ("DEU", 1))
_LEGAL_FORMS = {
    "PRIVATE_LIMITED": "OÜ", "PUBLIC_LIMITED": "AS", "GENERAL_PARTNERSHIP": "TÜ", "LIMITED_PARTNERSHIP": "UÜ",
    "COMMERCIAL_ASSOCIATION": "TÜH", "NON_PROFIT": "MTÜ", "FOUNDATION": "SA", "SOLE_PROPRIETOR": "FIE",
}
_TRADES = ("Ehitus", "Logistika", "Puit", "Tarkvara", "Kinnisvara", "Consulting", "Trade", "Metall", "Energia", "Aed")
_VEHICLES = (
    ("WVW", "Volkswagen", ("Golf", "Passat", "Tiguan")), ("TMB", "Škoda", ("Octavia", "Superb", "Fabia")),
    ("JTD", "Toyota", ("Corolla", "RAV4", "Yaris")), ("YV1", "Volvo", ("V60", "XC60", "XC90")),
    ("WBA", "BMW", ("320d", "X5", "520d")), ("VF1", "Renault", ("Clio", "Megane", "Kangoo")),
    ("WF0", "Ford", ("Focus", "Transit", "Kuga")),
)
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779 excludes I, O and Q
_PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVXYZ"
_COVERAGE_REASONS = ("EMPLOYMENT", "PENSIONER", "CHILD", "STUDENT", "UNEMPLOYED", "VOLUNTARY", "CAREGIVER")
_BENEFIT_EUROS = {"PENSION": (620, 1150), "UNEMPLOYMENT": (310, 980), "CHILD": (80, 200), "DISABILITY": (45, 290)}
_RECIPIENTS = ("tax-board", "health-insurance", "social-insurance", "statistics-office", "municipal-services",
               "police-board", "vehicle-registry")
_PURPOSES = ("TAX_ASSESSMENT", "HEALTH_COVERAGE", "BENEFIT_ELIGIBILITY", "OFFICIAL_STATISTICS", "LOCAL_SERVICES",
             "LAW_ENFORCEMENT")
_REJECT_REASONS = ("UNKNOWN_SCHEMA", "MALFORMED_DATUM", "COMMITMENT_MISMATCH", "BAD_SIGNATURE", "NOT_AUTHORITATIVE",
                   "DUPLICATE_EVENT")
_INGRESS = ("population.address-changed", "tax.income-assessed", "health.coverage-changed")
_CHECK_WEIGHTS_1 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 1)
_CHECK_WEIGHTS_2 = (3, 4, 5, 6, 7, 8, 9, 1, 2, 3)
_SOON = date(2024, 1, 1)


def sample_person_id(rng: random.Random, birth_date: date | None = None, sex: str | None = None) -> str:
    """An 11-digit national person code with a valid check digit (sex F or M; X draws either)."""
    birth_date = birth_date or _birth_date(rng)
    female = sex == "F" or (sex not in ("F", "M") and rng.random() < 0.5)
    century = 3 if birth_date.year < 2000 else 5
    digits = f"{century + int(female)}{birth_date:%y%m%d}{rng.randrange(1000):03d}"
    return digits + str(_check_digit(digits))


def _check_digit(digits: str) -> int:
    for weights in (_CHECK_WEIGHTS_1, _CHECK_WEIGHTS_2):
        rest = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
        if rest < 10:
            return rest
    return 0


def _parse_person_id(person_id: str) -> tuple[date, str] | None:
    if len(person_id) != 11 or not person_id.isdigit() or person_id[0] not in "3456":
        return None
    g = int(person_id[0])
    try:
        born = date(1900 + 100 * ((g - 3) // 2) + int(person_id[1:3]), int(person_id[3:5]), int(person_id[5:7]))
    except ValueError:
        return None
    return born, ("F" if g % 2 == 0 else "M")


def subject_ref_for(person_id: str) -> bytes:
    """A stand-in subject pseudonym for samples (SHA-256 of a label and the id; the exchange uses a keyed HMAC)."""
    return hashlib.sha256(b"exchange-sample-subject:" + person_id.encode()).digest()


def _birth_date(rng: random.Random) -> date:
    return date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 80))


def _day(rng: random.Random, span_days: int = 730) -> date:
    return _SOON + timedelta(days=rng.randrange(span_days))


def _moment(rng: random.Random) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(730 * 86_400 * 10**6))


def _uuid7(rng: random.Random, when: datetime) -> str:
    millis = int(when.timestamp() * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _person(rng: random.Random, person_id: str | None) -> str:
    return person_id if person_id is not None else sample_person_id(rng)


def _place(rng: random.Random) -> tuple[str, str, str]:
    code, prefix, streets = rng.choice(_PLACES)
    street = f"{rng.choice(streets)} {rng.randint(1, 140)}"
    if rng.random() < 0.6:
        street += f"-{rng.randint(1, 90)}"
    return code, f"{prefix}{rng.randrange(1000):03d}", street


def _person_registered(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    parsed = _parse_person_id(person_id) if person_id is not None else None
    born, sex = parsed if parsed else (_birth_date(rng), rng.choice("FM"))
    if rng.random() < 0.01:
        sex = "X"
    pid = person_id if person_id is not None else sample_person_id(rng, born, sex)
    code, _, _ = _place(rng)
    return {
        "person_id": pid,
        "given_name": rng.choice(_GIVEN_F if sex == "F" else _GIVEN_M),
        "family_name": rng.choice(_FAMILY),
        "birth_date": born,
        "sex": sex,
        "citizenship": rng.choices([c for c, _ in _CITIZENSHIP], [w for _, w in _CITIZENSHIP])[0],
        "municipality_code": code,
        "registered_on": _day(rng),
    }


def _address_changed(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    pid = _person(rng, person_id)
    code, postal, street = _place(rng)
    return {
        "person_id": pid,
        "street_address": street,
        "postal_code": postal,
        "municipality_code": code,
        "moved_on": _day(rng),
        "address_protected": rng.random() < 0.03,
        "dwelling_type": rng.choices(["APARTMENT", "HOUSE", "OTHER", None], [55, 30, 5, 10])[0],
    }


def _death_registered(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    return {"person_id": _person(rng, person_id), "date_of_death": _day(rng), "municipality_code": _place(rng)[0]}


def _company_registered(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    form = rng.choices(list(_LEGAL_FORMS), [60, 6, 2, 2, 1, 12, 3, 14])[0]
    capital = {"PRIVATE_LIMITED": rng.choice((0, 250_000, 500_000, rng.randint(1, 500) * 10_000)),
               "PUBLIC_LIMITED": rng.randint(25, 5_000) * 100_000}.get(form, 0)
    first = rng.choice(_GIVEN_M + _GIVEN_F) if form == "SOLE_PROPRIETOR" else ""
    name = f"{first} {rng.choice(_FAMILY)}".strip() if first else f"{rng.choice(_FAMILY)} {rng.choice(_TRADES)}"
    return {
        "company_id": f"{rng.choice('1789')}{rng.randrange(10**7):07d}",
        "name": f"{name} {_LEGAL_FORMS[form]}",
        "legal_form": form,
        "registered_on": _day(rng),
        "municipality_code": _place(rng)[0],
        "share_capital_cents": capital,
    }


def _income_assessed(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    income = rng.randint(6_000, 120_000) * 100 + rng.randrange(100)
    due = income * rng.randint(160, 220) // 1000 - rng.choice((0, 0, 0, 65_400))
    return {
        "person_id": _person(rng, person_id),
        "tax_year": rng.choice((2023, 2024)),
        "taxable_income_cents": income,
        "tax_due_cents": due,
        "assessed_on": _day(rng),
    }


def _coverage_changed(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    status = rng.choices(["ACTIVE", "SUSPENDED", "ENDED"], [75, 5, 20])[0]
    start = _day(rng)
    until = None if status == "ACTIVE" and rng.random() < 0.8 else start + timedelta(days=rng.randint(30, 730))
    return {
        "person_id": _person(rng, person_id),
        "coverage_status": status,
        "coverage_from": start,
        "coverage_until": until,
        "reason_code": rng.choice(_COVERAGE_REASONS),
        "municipality_code": _place(rng)[0],
    }


def _vehicle_registered(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    wmi, make, models = rng.choice(_VEHICLES)
    return {
        "person_id": _person(rng, person_id),
        "vin": wmi + "".join(rng.choice(_VIN_CHARS) for _ in range(14)),
        "registration_number": f"{rng.randrange(1000):03d} {''.join(rng.choice(_PLATE_LETTERS) for _ in range(3))}",
        "make": make,
        "model": rng.choice(models),
        "first_registered_on": date(2005, 1, 1) + timedelta(days=rng.randrange(365 * 19)),
    }


def _benefit_granted(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    kind = rng.choices(list(_BENEFIT_EUROS), [50, 15, 25, 10])[0]
    low, high = _BENEFIT_EUROS[kind]
    start = _day(rng)
    return {
        "person_id": _person(rng, person_id),
        "benefit_type": kind,
        "monthly_amount_cents": rng.randint(low, high) * 100 + rng.choice((0, 50)),
        "granted_from": start,
        "granted_until": None if kind == "PENSION" else start + timedelta(days=rng.randint(90, 1095)),
        "municipality_code": _place(rng)[0],
    }


def _decision(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    when = _moment(rng)
    outcome = rng.choices(["PERMIT", "DENY", "REJECT"], [70, 25, 5])[0]
    event_type = rng.choice(_INGRESS)
    rejected = outcome == "REJECT"
    consent = not rejected and rng.random() < 0.2
    return {
        "decision_id": _uuid7(rng, when),
        "decided_at": when,
        "router_id": f"router-{rng.randint(1, 3)}",
        "event_id": _uuid7(rng, when - timedelta(milliseconds=rng.randint(1, 900))),
        "event_type": event_type,
        "event_source": {"tax": "tax-board", "health": "health-insurance"}.get(event_type.split(".")[0],
                                                                               "population-registry"),
        "ingress_topic": f"ingress.{event_type}",
        "ingress_partition": rng.randrange(12),
        "ingress_offset": rng.randrange(10**7),
        "event_digest": None if rejected else rng.randbytes(32),
        "subject_ref": subject_ref_for(_person(rng, person_id)),
        "recipient": None if rejected else rng.choice(_RECIPIENTS),
        "agreement_id": None if rejected else f"agr-{rng.randint(1, 40):03d}",
        "agreement_version": None if rejected else rng.randint(1, 4),
        "bundle_id": rng.randbytes(32).hex(),
        "purpose": None if rejected else rng.choice(_PURPOSES),
        "legal_basis": None if rejected else ("consent" if consent else f"RT I 2024, {rng.randint(1, 99)} § 4"),
        "consent_ref": _uuid7(rng, when - timedelta(days=30)) if consent else None,
        "outcome": outcome,
        "reason_codes": {"PERMIT": ["AGREEMENT_VALID", "PURPOSE_MATCH"], "DENY": ["RESTRICTION_PROTECTED_ADDRESS"],
                         "REJECT": [rng.choice(_REJECT_REASONS)]}[outcome],
        "fields_released": ["person_id", "postal_code", "municipality_code"] if outcome == "PERMIT" else [],
        "event_time": None if rejected else when - timedelta(milliseconds=rng.randint(1, 900)),
        "restrictions_held": [] if rejected or rng.random() < 0.9 else ["restr-protected-address"],
        "consent_offset": None if rejected else rng.randrange(10**5),
    }


def _consent(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    granted = _moment(rng)
    status = rng.choices(["ACTIVE", "PAUSED", "REVOKED", "EXPIRED"], [70, 5, 15, 10])[0]
    return {
        "consent_id": _uuid7(rng, granted),
        "version": 1 if status == "ACTIVE" else rng.randint(2, 4),
        "subject": subject_ref_for(_person(rng, person_id)).hex()[:32],
        "recipient": rng.choice(_RECIPIENTS),
        "purpose": rng.choice(_PURPOSES),
        "record_types": rng.sample(_INGRESS, rng.randint(1, 2)),
        "fields": rng.choice((None, ["postal_code", "municipality_code"])),
        "start": granted,
        "expiry": granted + timedelta(days=rng.choice((90, 180, 365))),
        "status": status,
        "issued_at": granted + timedelta(hours=rng.randint(0, 2000)),
        "issuer": "exchange-consent",
        "signature": "— exchange-consent " + "A" * 92,
    }


def _quarantine(rng: random.Random, person_id: str | None) -> dict[str, Any]:
    when = _moment(rng)
    topic = f"ingress.{rng.choice(_INGRESS)}"
    return {
        "quarantine_id": _uuid7(rng, when),
        "quarantined_at": when,
        "quarantined_by": f"router-{rng.randint(1, 3)}",
        "reason_code": rng.choice(_REJECT_REASONS),
        "detail": "check failed on the fields named by the reason code",
        "original_topic": topic,
        "original_partition": rng.randrange(12),
        "original_offset": rng.randrange(10**7),
        "original_key": subject_ref_for(_person(rng, person_id)),
        "original_headers": [{"name": "ce_specversion", "value": b"1.0"},
                             {"name": "ce_type", "value": topic.removeprefix("ingress.").encode()},
                             {"name": "content-type", "value": b"application/avro"}],
        "original_value": b"\xc3\x01" + rng.randbytes(rng.randint(20, 120)),
    }


_MAKERS: dict[str, Callable[[random.Random, str | None], dict[str, Any]]] = {
    "population.person-registered": _person_registered,
    "population.address-changed": _address_changed,
    "population.death-registered": _death_registered,
    "business.company-registered": _company_registered,
    "tax.income-assessed": _income_assessed,
    "health.coverage-changed": _coverage_changed,
    "vehicle.vehicle-registered": _vehicle_registered,
    "social.benefit-granted": _benefit_granted,
    "exchange.decision": _decision,
    "exchange.consent": _consent,
    "exchange.quarantine": _quarantine,
}

SAMPLE_TYPES: tuple[str, ...] = tuple(sorted(_MAKERS))
"""Every record type :func:`sample_record` can make."""


def sample_record(type_name: str, rng: random.Random, person_id: str | None = None) -> dict[str, Any]:
    """A valid, realistic record of the current revision of ``type_name``, drawn from ``rng``.

    ``person_id`` fixes the subject (for exchange types, their ``subject_ref`` is derived from it); otherwise a
    fresh person is drawn. KeyError if the type is unknown.
    """
    try:
        maker = _MAKERS[type_name]
    except KeyError:
        raise KeyError(f"no sample records for {type_name!r}; known: {', '.join(SAMPLE_TYPES)}") from None
    return maker(rng, person_id)
