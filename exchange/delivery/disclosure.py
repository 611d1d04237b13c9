"""The disclosure: what one recipient learns of one event, in a compact canonical binary form.

A disclosure holds the event's CloudEvents attributes, the publisher's batch note and inclusion proof, the
agreement it is delivered under, and one entry for the key and for each schema field, in schema order: either
*disclosed* (the salt and the value's Avro encoding, from which the recipient recomputes the commitment) or
*withheld* (only the commitment). With every commitment in hand the recipient recomputes the event digest and
checks it against the publisher's signed batch root, without learning anything that was withheld (as SD-JWT).

Wire format, version 1 (integers big-endian; ``str`` is a u16 length and UTF-8, ``blob`` a u16 length and bytes)::

    u8    version (1)
    u8    flags: bit 0 = pseudonymised (the key field and the key are withheld)
    str   subject pseudonym for this recipient (empty unless pseudonymised) — attested by the router
    str   agreement id
    u32   agreement version
    str   purpose
    blob  the CloudEvents attributes exactly as the publisher signs them: ce_id, ce_source, ce_type, ce_time,
          ce_dataschema, each followed by a newline
    blob  batch note (the publisher's C2SP signed note)
    blob  inclusion proof
    u16   number of entries: 1 (the key) + the schema's fields
    entry the key, then each field in schema order:
            0x00 ‖ commitment (32 bytes)                                withheld
            0x01 ‖ salt (16 bytes) ‖ u32 length ‖ the value's Avro bytes  disclosed

Names are not repeated: the schema named by ``ce_dataschema`` gives them by position. The encoding of a
disclosure is unique, and decoding refuses anything that is not exactly one disclosure. Encoding a part that does
not fit its length prefix or field (a string over 65 535 bytes, a version outside u32) raises
:class:`~exchange.delivery.errors.UnencodableError`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

from exchange.delivery.errors import BadDisclosureError, UnencodableError
from exchange.envelope.attributes import EventAttributes
from exchange.envelope.commitments import KEY_FIELD, SALT_SIZE, commit

__all__ = [
    "COMMITMENT_SIZE",
    "DISCLOSURE_VERSION",
    "NO_SUBJECT",
    "WITHHELD_TAG",
    "Disclosed",
    "Disclosure",
    "Entry",
    "Withheld",
    "assemble",
    "decode_disclosure",
    "disclosed_prefixes",
    "encode_agreement",
    "encode_disclosure",
    "encode_event_head",
    "encode_note",
    "encode_subject",
]

DISCLOSURE_VERSION = 1
COMMITMENT_SIZE = 32
_PSEUDONYMISED = 0x01
_WITHHELD, _DISCLOSED = 0, 1
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
_VERSION_BYTE = bytes((DISCLOSURE_VERSION,))
_DISCLOSED_PREFIX = struct.Struct(f">B{SALT_SIZE}sI")


class Disclosed(NamedTuple):
    """A released value: its salt and its Avro encoding (a named tuple: recipients build one per field)."""

    salt: bytes
    value: bytes


class Withheld(NamedTuple):
    """A value the recipient does not get: only the publisher's commitment to it."""

    commitment: bytes


Entry = Disclosed | Withheld


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One event as one recipient may see it; see the module docstring for the wire format."""

    attributes: EventAttributes
    agreement_id: str
    agreement_version: int
    purpose: str
    subject_pseudonym: str | None
    """The recipient-specific pseudonym when pseudonymised (attested by the router, not by the publisher)."""
    note: str
    proof: bytes
    key: Entry
    fields: tuple[Entry, ...]
    """One entry per schema field, in schema order."""

    @property
    def pseudonymised(self) -> bool:
        """True when the key field and the key are withheld and a recipient pseudonym stands in for them."""
        return self.subject_pseudonym is not None

    def commitments(self, names: Sequence[str]) -> list[bytes]:
        """``[c_key, c_field1, …]`` for the schema's field ``names``, as the publisher computed them."""
        if len(names) != len(self.fields):
            raise BadDisclosureError(f"the disclosure has {len(self.fields)} fields, the schema {len(names)}")
        out = [_commitment(KEY_FIELD, self.key)]
        out.extend(_commitment(name, entry) for name, entry in zip(names, self.fields, strict=True))
        return out

    def encode(self) -> bytes:
        """The canonical bytes (see the module docstring)."""
        return encode_disclosure(self)


def _commitment(name: str, entry: Entry) -> bytes:
    if isinstance(entry, Disclosed):
        return commit(entry.salt, name, entry.value)
    return entry.commitment


# -- encoding: small pieces, so the sealer can cache the per-event ones and join them per delivery ---------------

def _str(text: str, what: str) -> bytes:
    try:
        raw = text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise UnencodableError(f"{what} is not encodable as UTF-8") from exc
    return _blob(raw, what)


def _blob(raw: bytes, what: str) -> bytes:
    if len(raw) > _U16_MAX:
        raise UnencodableError(f"{what} has {len(raw)} bytes; its u16 length prefix allows at most {_U16_MAX}")
    return _U16.pack(len(raw)) + raw


WITHHELD_TAG = b"\x00"
"""A withheld entry is this tag and the 32-byte commitment."""


def disclosed_prefixes(salts: Sequence[bytes], values: Sequence[bytes]) -> list[bytes]:
    """What precedes each disclosed value: its tag, salt and length (one C-level pack per value)."""
    try:
        return list(map(_DISCLOSED_PREFIX.pack, repeat(_DISCLOSED), salts, map(len, values)))
    except struct.error as exc:  # a value of 4 GiB or more, or a salt that is not bytes
        raise UnencodableError(f"a disclosed value does not fit its entry: {exc}") from exc


NO_SUBJECT = b"\x00\x00\x00"
"""The flags and (empty) pseudonym of a disclosure that is not pseudonymised."""


def encode_subject(subject_pseudonym: str | None) -> bytes:
    """The flags and the subject pseudonym (per delivery)."""
    if subject_pseudonym is None:
        return NO_SUBJECT
    return bytes((_PSEUDONYMISED,)) + _str(subject_pseudonym, "the subject pseudonym")


def encode_agreement(agreement_id: str, agreement_version: int, purpose: str) -> bytes:
    """The agreement block (per decision)."""
    if not 0 <= agreement_version <= _U32_MAX:
        raise UnencodableError(f"agreement version {agreement_version} is outside 0 to {_U32_MAX}")
    return _str(agreement_id, "the agreement id") + _U32.pack(agreement_version) + _str(purpose, "the purpose")


def encode_note(note: str) -> bytes:
    """The batch note block (per batch)."""
    return _str(note, "the batch note")


def encode_event_head(attributes: EventAttributes, note_block: bytes, proof: bytes, count: int) -> bytes:
    """The attributes, batch note (as :func:`encode_note` gives it), proof and entry count (per event)."""
    if not 1 <= count <= _U16_MAX:
        raise UnencodableError(f"a disclosure holds 1 to {_U16_MAX} entries, not {count}")
    try:
        signed = attributes.signing_bytes()
    except UnicodeEncodeError as exc:
        raise UnencodableError("the event's attributes are not encodable as UTF-8") from exc
    return b"".join((_blob(signed, "the attributes"), note_block, _blob(proof, "the inclusion proof"),
                     _U16.pack(count)))


def assemble(subject: bytes, agreement: bytes, event_head: bytes, pieces: Sequence[bytes]) -> bytes:
    """A whole disclosure from its encoded parts; ``pieces`` are the entries, two pieces each."""
    return b"".join((_VERSION_BYTE, subject, agreement, event_head, *pieces))


def _pieces(entry: Entry) -> tuple[bytes, bytes]:
    if isinstance(entry, Disclosed):
        return disclosed_prefixes((entry.salt,), (entry.value,))[0], entry.value
    return WITHHELD_TAG, entry.commitment


def encode_disclosure(d: Disclosure) -> bytes:
    """The canonical encoding of ``d``."""
    entries = (d.key, *d.fields)
    return assemble(encode_subject(d.subject_pseudonym),
                    encode_agreement(d.agreement_id, d.agreement_version, d.purpose),
                    encode_event_head(d.attributes, encode_note(d.note), d.proof, len(entries)),
                    [piece for entry in entries for piece in _pieces(entry)])


# -- decoding ------------------------------------------------------------------------------------------------

_u16_at = _U16.unpack_from
_u32_at = _U32.unpack_from


def _take(data: bytes, pos: int, n: int, what: str) -> tuple[bytes, int]:
    end = pos + n
    if end > len(data):
        raise BadDisclosureError(f"the disclosure ends inside {what}")
    return data[pos:end], end


def _blob_at(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise BadDisclosureError(f"the disclosure ends inside {what}")
    return _take(data, pos + 2, _u16_at(data, pos)[0], what)


def _text_at(data: bytes, pos: int, what: str) -> tuple[str, int]:
    raw, pos = _blob_at(data, pos, what)
    try:
        return raw.decode(), pos
    except UnicodeDecodeError as exc:
        raise BadDisclosureError(f"{what} is not UTF-8") from exc


def _entries_at(data: bytes, pos: int, count: int) -> tuple[list[Entry], int]:
    # Bounds are checked inline (no helper, no message built) because this runs once per field per delivery.
    entries: list[Entry] = []
    end = len(data)
    for i in range(count):
        if pos >= end:
            raise BadDisclosureError(f"the disclosure ends before entry {i}")
        tag = data[pos]
        if tag == _WITHHELD:
            stop = pos + 1 + COMMITMENT_SIZE
            if stop > end:
                raise BadDisclosureError(f"the disclosure ends inside entry {i}")
            entries.append(Withheld(data[pos + 1:stop]))
        elif tag == _DISCLOSED:
            start = pos + 1 + SALT_SIZE + 4
            if start > end:
                raise BadDisclosureError(f"the disclosure ends inside entry {i}")
            stop = start + _u32_at(data, start - 4)[0]
            if stop > end:
                raise BadDisclosureError(f"the disclosure ends inside entry {i}")
            entries.append(Disclosed(data[pos + 1:pos + 1 + SALT_SIZE], data[start:stop]))
        else:
            raise BadDisclosureError(f"entry {i} has tag {tag}, neither withheld (0) nor disclosed (1)")
        pos = stop
    return entries, pos


def _attributes(text: str) -> EventAttributes:
    lines = text.split("\n")
    if len(lines) != 6 or lines[5] != "":
        raise BadDisclosureError("the attributes are not five lines")
    if not all(lines[:5]):
        raise BadDisclosureError("an attribute is empty")
    return EventAttributes(*lines[:5])


def decode_disclosure(data: bytes) -> Disclosure:
    """Parse exactly one disclosure; raises :class:`BadDisclosureError` naming what is wrong."""
    if len(data) < 3:
        raise BadDisclosureError("the disclosure is truncated")
    if data[0] != DISCLOSURE_VERSION:
        raise BadDisclosureError(f"disclosure version {data[0]} is not {DISCLOSURE_VERSION}")
    flags = data[1]
    if flags & ~_PSEUDONYMISED:
        raise BadDisclosureError(f"unknown disclosure flags {flags:#04x}")
    pseudonym, pos = _text_at(data, 2, "the subject pseudonym")
    if bool(flags & _PSEUDONYMISED) != bool(pseudonym):
        raise BadDisclosureError("a subject pseudonym is present if and only if the disclosure is pseudonymised")
    agreement_id, pos = _text_at(data, pos, "the agreement id")
    raw_version, pos = _take(data, pos, 4, "the agreement version")
    purpose, pos = _text_at(data, pos, "the purpose")
    attributes, pos = _text_at(data, pos, "the attributes")
    note, pos = _text_at(data, pos, "the batch note")
    proof, pos = _blob_at(data, pos, "the inclusion proof")
    raw_count, pos = _take(data, pos, 2, "the entry count")
    count = _U16.unpack(raw_count)[0]
    if count < 1:
        raise BadDisclosureError("the disclosure has no key entry")
    entries, pos = _entries_at(data, pos, count)
    if pos != len(data):
        raise BadDisclosureError(f"{len(data) - pos} trailing bytes after the disclosure")
    return Disclosure(_attributes(attributes), agreement_id, _U32.unpack(raw_version)[0], purpose, pseudonym or None,
                      note, proof, entries[0], tuple(entries[1:]))
