"""The keystore: a directory of private keys, one pair per identity, readable by their owner only.

Layout of ``<keystore>/`` (the directory is created mode 0700)::

    <id>.ed25519.key     mode 0600  the signing key (``PRIVATE+KEY+<id>+<key id>+...``, the sumdb/note format)
    <id>.x25519.key      mode 0600  the encryption key (``PRIVATE+X25519+KEY+<id>+<key id>+...``)
    <id>.public.yaml     mode 0644  the public registry entry, with the ``valid_from`` chosen at creation
    retired/             mode 0700  keys replaced by :meth:`Keystore.rotate_identity`, named by their key ids

Key files are created with ``O_CREAT | O_EXCL`` and mode 0600, so a key is never overwritten and never exists,
even briefly, with a mode others can read. A key file that group or others can read is refused.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from exchange.crypto.errors import KeyFormatError
from exchange.crypto.keys import EncryptionKey, Signer, encode_public_key
from exchange.registry.errors import KeystoreError
from exchange.registry.models import Agency, EncryptionKeyEntry, RegistryDocument, Service, SigningKeyEntry
from exchange.registry.registry import Registry
from exchange.safeparse import SafeParseError, read_yaml

__all__ = ["DemoKeystore", "Keystore", "PublicEntry", "make_demo_keystore"]

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644


class PublicEntry(BaseModel):
    """The public half of an identity's keys, as registry entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity_id: str
    signing_key: SigningKeyEntry
    encryption_key: EncryptionKeyEntry

    def to_yaml(self) -> str:
        """The snippet to add under the identity in ``policies/registry.yaml``."""
        body = {
            "signing_keys": [self.signing_key.model_dump(mode="json", exclude_none=True)],
            "encryption_key": self.encryption_key.model_dump(mode="json", exclude_none=True),
        }
        header = f"# keys of {self.identity_id}: add under its entry in the registry (policies/registry.yaml)\n"
        return header + yaml.safe_dump(body, sort_keys=False)


class Keystore:
    """A directory of private keys. Reads refuse missing files and files group or others can read."""

    __slots__ = ("_path",)

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)

    @property
    def path(self) -> Path:
        """The keystore directory."""
        return self._path

    def has_identity(self, identity_id: str) -> bool:
        """Whether a signing key file exists for ``identity_id``."""
        return self._file(identity_id, "ed25519.key").exists()

    def identities(self) -> list[str]:
        """The ids that have a signing key file, sorted."""
        if not self._path.is_dir():
            return []
        return sorted(p.name.removesuffix(".ed25519.key") for p in self._path.glob("*.ed25519.key"))

    def create_identity(self, identity_id: str, *, valid_from: datetime | None = None) -> PublicEntry:
        """Generate and write a signing and an encryption key pair; returns the public registry entry.

        ``valid_from`` defaults to now (to the second). Refuses to overwrite any existing file of the identity.
        """
        files = [self._file(identity_id, suffix) for suffix in ("ed25519.key", "x25519.key", "public.yaml")]
        for f in files:
            if f.exists():
                raise KeystoreError(
                    f"{f} exists: refusing to overwrite keys of {identity_id!r} "
                    f"(to replace them: exchange keys new {identity_id} --rotate)"
                )
        valid_from = valid_from or datetime.now(UTC).replace(microsecond=0)
        if valid_from.tzinfo is None:
            raise KeystoreError("valid_from must carry a time zone (e.g. 2025-01-01T00:00:00Z)")
        signer = Signer.generate(identity_id)
        decrypter = EncryptionKey.generate(identity_id)
        entry = PublicEntry(
            identity_id=identity_id,
            signing_key=SigningKeyEntry(
                key_id=signer.key_id, public_key=signer.verifier_key(), valid_from=valid_from
            ),
            encryption_key=EncryptionKeyEntry(
                key_id=decrypter.key_id, public_key=encode_public_key(decrypter.public_key), valid_from=valid_from
            ),
        )
        self._ensure_directory()
        contents = [
            signer.export_private_key_string() + "\n",
            decrypter.export_private_key_string() + "\n",
            yaml.safe_dump(entry.model_dump(mode="json", exclude_none=True), sort_keys=False),
        ]
        modes = [_PRIVATE_MODE, _PRIVATE_MODE, _PUBLIC_MODE]
        written: list[Path] = []
        try:
            for f, content, mode in zip(files, contents, modes, strict=True):
                write_new_key_file(f, content, mode)
                written.append(f)
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            raise
        return entry

    def rotate_identity(self, identity_id: str, *, valid_from: datetime | None = None) -> PublicEntry:
        """Retire the identity's current keys to ``retired/`` and create new ones; returns the new public entry.

        The retired files keep their mode and are named by their key ids, so signatures made with the old key
        stay verifiable and the old key can be revoked in the registry when the new one is in use.
        """
        old_signing = self.signer(identity_id).key_id
        old_encryption = self.encryption_private_key(identity_id).key_id
        retired = self._path / "retired"
        try:
            retired.mkdir(mode=0o700, exist_ok=True)
            os.chmod(retired, 0o700)
            for suffix, key_id in (
                ("ed25519.key", old_signing),
                ("x25519.key", old_encryption),
                ("public.yaml", old_signing),
            ):
                target = retired / f"{identity_id}.{key_id}.{suffix}"
                if target.exists():
                    raise KeystoreError(f"{target} exists: refusing to overwrite a retired key")
                os.rename(self._file(identity_id, suffix), target)
        except OSError as exc:
            raise KeystoreError(f"cannot retire the keys of {identity_id!r}: {exc}") from exc
        return self.create_identity(identity_id, valid_from=valid_from)

    def signer(self, identity_id: str) -> Signer:
        """The signing key of ``identity_id``; :class:`KeystoreError` if missing, too open or not a key."""
        return self._private(identity_id, "ed25519.key", Signer.from_private_key_string, "a signing key")

    def encryption_private_key(self, identity_id: str) -> EncryptionKey:
        """The encryption key of ``identity_id``; :class:`KeystoreError` if missing, too open or not a key."""
        return self._private(identity_id, "x25519.key", EncryptionKey.from_private_key_string, "an encryption key")

    def _private(self, identity_id: str, suffix: str, parse: Callable[[str], _K], what: str) -> _K:
        path = self._file(identity_id, suffix)
        try:
            key = parse(read_private_key_file(
                path, f"no key file {path} for {identity_id!r} (fix: exchange keys new {identity_id} --keystore "
                      f"{path.parent})"))
        except KeyFormatError as exc:
            raise KeystoreError(f"{path} is not {what}: {exc}") from exc
        if key.name != identity_id:
            raise KeystoreError(f"{path} holds the key of {key.name!r}, not {identity_id!r}")
        return key

    def public_entry(self, identity_id: str) -> PublicEntry:
        """The public registry entry of ``identity_id``, checked against its private keys."""
        path = self._file(identity_id, "public.yaml")
        try:
            entry = PublicEntry.model_validate(read_yaml(path).data)
        except FileNotFoundError:
            raise KeystoreError(
                f"no public entry {path} for {identity_id!r} (fix: exchange keys new {identity_id})"
            ) from None
        except (OSError, SafeParseError, ValidationError) as exc:
            raise KeystoreError(f"{path} is not a public key entry: {exc}") from exc
        if (
            entry.identity_id != identity_id
            or entry.signing_key.key_id != self.signer(identity_id).key_id
            or entry.encryption_key.key_id != self.encryption_private_key(identity_id).key_id
        ):
            raise KeystoreError(f"{path} does not describe the private keys of {identity_id!r} beside it")
        return entry

    def _file(self, identity_id: str, suffix: str) -> Path:
        # The id becomes a file name: only slugs, so no path can escape the keystore.
        if not _SLUG.fullmatch(identity_id):
            raise KeystoreError(f"identity id {identity_id!r} is not a slug (lowercase letters, digits, '-')")
        return self._path / f"{identity_id}.{suffix}"

    def _ensure_directory(self) -> None:
        if self._path.is_dir():
            return
        try:
            self._path.mkdir(mode=0o700, parents=True)
            os.chmod(self._path, 0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise KeystoreError(f"cannot create keystore directory {self._path}: {exc.strerror}") from exc

    def __repr__(self) -> str:
        return f"Keystore({str(self._path)!r})"


@dataclass(frozen=True, slots=True)
class DemoKeystore:
    """What :func:`make_demo_keystore` did: identities whose keys it created or reused, and where it wrote."""

    keystore: Path
    registry: Path
    created: tuple[str, ...]
    reused: tuple[str, ...]


def make_demo_keystore(
    keystore_dir: Path | str, registry_in: Path | str, registry_out: Path | str, *, valid_from: datetime | None = None
) -> DemoKeystore:
    """Give every agency and service of ``registry_in`` keys, and write the registry with them to ``registry_out``.

    Identities that already have keys in the keystore keep them, so a second run changes nothing. Agencies get
    their encryption key in the registry; services only their signing key (the exchange encrypts nothing for them).
    """
    registry = Registry.load(registry_in)
    keystore = Keystore(keystore_dir)
    created: list[str] = []
    reused: list[str] = []

    def keys_of(identity_id: str) -> PublicEntry:
        if keystore.has_identity(identity_id):
            reused.append(identity_id)
            return keystore.public_entry(identity_id)
        created.append(identity_id)
        return keystore.create_identity(identity_id, valid_from=valid_from)

    document = RegistryDocument(
        agencies=tuple(_with_keys(a, keys_of(a.id), encryption=True) for a in registry.agencies),
        services=tuple(_with_keys(s, keys_of(s.id), encryption=False) for s in registry.services),
    )
    out = Path(registry_out)
    Registry(document, source=str(out))  # refuse to write a registry that would not load
    header = (
        f"# Generated by `exchange keys demo` from {registry_in}: the registry with the public keys of the\n"
        f"# demo keystore {keystore.path}. Public keys only; the private keys stay in the keystore.\n"
    )
    body = yaml.safe_dump(document.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)
    _replace_file(out, header + body)
    return DemoKeystore(keystore.path, out, tuple(created), tuple(reused))


_I = TypeVar("_I", Agency, Service)
_K = TypeVar("_K", Signer, EncryptionKey)


def _with_keys(identity: _I, entry: PublicEntry, *, encryption: bool) -> _I:
    signing: tuple[SigningKeyEntry, ...] = identity.signing_keys
    if all(k.key_id != entry.signing_key.key_id for k in signing):
        signing = (*signing, entry.signing_key)
    update: dict[str, object] = {"signing_keys": signing}
    if encryption:
        update["encryption_key"] = entry.encryption_key
    return identity.model_copy(update=update)


def _replace_file(path: Path, content: str) -> None:
    # Write beside the target and rename, so a reader never sees half a registry.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(content)
            os.chmod(tmp, _PUBLIC_MODE)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise KeystoreError(f"cannot write {path}: {exc.strerror}") from exc


def write_new_key_file(path: Path, content: str, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` and ``content``, synced; never over an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeystoreError(f"{path} exists: refusing to overwrite a key file") from None
    except OSError as exc:
        raise KeystoreError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed the public file's mode; set it exactly
        data = content.encode()
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private_key_file(path: Path, missing: str) -> str:
    """The ASCII text of the private key file ``path``, refused unless it is a regular file that only its owner
    can access; ``missing`` is the message when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeystoreError(missing) from None
    except OSError as exc:
        raise KeystoreError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        # fstat on the open descriptor: the checked file is the one read, whatever happens to the path.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeystoreError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeystoreError(
                f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others can access a private key "
                f"(fix: chmod 600 {path})"
            )
        chunks: list[bytes] = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("ascii")
    except UnicodeDecodeError:
        raise KeystoreError(f"{path} is not a key file (not ASCII text)") from None
