"""Sample records: deterministic, valid for their schema, with well-formed person ids."""

from __future__ import annotations

import pytest

from exchange.schemas import Catalogue
from exchange.schemas.samples import SAMPLE_TYPES, sample_person_id, sample_record, subject_ref_for
from tests.unit.schemas.conftest import seeded


def _check_digit_ok(code: str) -> bool:
    for weights in ((1, 2, 3, 4, 5, 6, 7, 8, 9, 1), (3, 4, 5, 6, 7, 8, 9, 1, 2, 3)):
        rest = sum(int(d) * w for d, w in zip(code[:10], weights, strict=True)) % 11
        if rest < 10:
            return rest == int(code[10])
    return code[10] == "0"


@pytest.mark.parametrize("type_name", SAMPLE_TYPES)
def test_samples_are_deterministic_and_valid(catalogue: Catalogue, type_name: str) -> None:
    """The same seed gives the same records, and every record encodes without a validation error."""
    first = [sample_record(type_name, seeded(21)) for _ in range(3)]
    assert first == [sample_record(type_name, seeded(21)) for _ in range(3)]
    rng = seeded(22)
    for _ in range(100):
        catalogue.encode(type_name, sample_record(type_name, rng))


def test_person_ids_have_valid_check_digits() -> None:
    """Generated person ids are 11 digits with a valid check digit, encoding the birth date and sex."""
    rng = seeded(23)
    for _ in range(500):
        code = sample_person_id(rng)
        assert len(code) == 11
        assert code.isdigit()
        assert code[0] in "3456"
        assert _check_digit_ok(code)


def test_person_id_is_kept_and_drives_the_person() -> None:
    """A given person id is used as is; person-registered derives birth date and sex from it."""
    rng = seeded(24)
    for type_name in SAMPLE_TYPES:
        record = sample_record(type_name, rng, person_id="49002124277")
        if "person_id" in record:
            assert record["person_id"] == "49002124277"
        if "subject_ref" in record:
            assert record["subject_ref"] == subject_ref_for("49002124277")
    person = sample_record("population.person-registered", seeded(25), person_id="49002124277")
    assert str(person["birth_date"]) == "1990-02-12"
    assert person["sex"] in ("F", "X")


def test_unknown_type_is_refused() -> None:
    """Asking for a type without samples raises KeyError naming the known ones."""
    with pytest.raises(KeyError, match=r"population\.address-changed"):
        sample_record("population.unknown", seeded(26))
