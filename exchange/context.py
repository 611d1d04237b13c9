"""One place that turns settings into the loaded parts every service shares: the trust registry, the schema
catalogue, the compiled policies, the pseudonymiser and the keystore. Each part loads on first use."""

from __future__ import annotations

from functools import cached_property

from exchange.envelope import Pseudonymiser
from exchange.errors import ConfigError
from exchange.policy import PolicyIndex, TypeInfo, compile_policies, load_policies
from exchange.registry import Keystore, Registry
from exchange.schemas import Catalogue
from exchange.settings import Settings, get_settings

__all__ = ["EXCHANGE_DOMAIN", "Context", "type_infos"]

EXCHANGE_DOMAIN = "exchange"
"""The exchange's own record types (decision, consent, quarantine) are never published by agencies."""


def type_infos(catalogue: Catalogue) -> dict[str, TypeInfo]:
    """What the policy engine needs of each shareable type: fields, classifications and key, newest revision."""
    infos: dict[str, TypeInfo] = {}
    for name in catalogue.types():
        if name.split(".", 1)[0] == EXCHANGE_DOMAIN:
            continue
        schema = catalogue.current(name)
        infos[name] = TypeInfo(name, {f.name: str(f.classification) for f in schema.fields}, schema.key_field,
                               str(schema.key_kind))
    return infos


class Context:
    """The loaded configuration of one exchange process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    @cached_property
    def registry(self) -> Registry:
        return Registry.load(self.settings.registry)

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue.load(self.settings.schemas)

    @cached_property
    def policies(self) -> PolicyIndex:
        registry = self.registry
        return compile_policies(load_policies(self.settings.policies), type_infos(self.catalogue),
                                [a.id for a in registry.agencies], registry.canonical())

    @cached_property
    def pseudonymiser(self) -> Pseudonymiser:
        secret = self.settings.pseudonym_secret
        if secret is None:
            raise ConfigError("EXCHANGE_PSEUDONYM_SECRET is not set: every publisher and the router must share "
                              "the secret that subject pseudonyms are keyed with (`exchange demo` makes one)")
        try:
            return Pseudonymiser(secret)
        except ValueError as exc:
            raise ConfigError(f"EXCHANGE_PSEUDONYM_SECRET: {exc}") from exc

    @cached_property
    def keystore(self) -> Keystore:
        return Keystore(self.settings.keystore)
