"""The configuration loaders, fed mutated genuine files: the policy files, the trust registry, the topic spec,
connector configs, and the shared parser itself. Each input is written to a file in a scratch folder (on tmpfs
where there is one) and read by the loader as a deployment would read it.

The rule: the loader returns, or raises its typed error naming the file (and, where it has one, the line).
"""

from __future__ import annotations

import base64
import contextlib
import re
from pathlib import Path

import yaml

from connectors.kinds import KINDS
from connectors.sdk import ConnectorConfig, ConnectorConfigError, load_config
from exchange import safeparse
from exchange.cli.policies import _read_types  # the same record types `policies check` reads
from exchange.errors import ConfigError
from exchange.policy import PolicyFileError, find_issues, load_policies, scan_policies
from exchange.policy.files import read_yaml
from exchange.registry import Registry, RegistryFileError
from exchange.topics import TopicInputs, TopicSpecError, discover_inputs, expand, load_spec
from tests.fuzz.engine import ROOT, Harness, RuleBroken, scratch
from tests.fuzz.records import fixed_encryption_key, fixed_signers
from tests.keys import shipped_registry_document

_POLICIES = ROOT / "policies"
_YAML_TOKENS = [
    b"\x00", b"\x1b", b"*a", b"&a ", b"<<: *a\n", b"[" * 70, b"- " * 70, b"{a: " * 70, b"? ", b"--- ", b"\n...\n",
    b"!!binary ", b"!!timestamp ", b"!!bool ", b"!!null ", b"!!str ", b"!!int ", b"!!float ", b"!!set ", b"!!omap ",
    b"2024-02-30", b"99999999999", b"1e400", b".nan", b"-.inf", b"0b1", b"0x_", b"1_000", b"~", b"''",
    b"\"\\u0000\"", b"\"\\ud800\"", b"\t", b"\xef\xbb\xbf", b"%TAG ! tag:x,2000:\n",
]


def _names_the_file(exc: BaseException, path: Path) -> None:
    if str(path) not in str(exc):
        raise RuleBroken(f"{type(exc).__name__} does not name the file", str(exc)[:200]) from exc


class _ConfigHarness(Harness):
    max_len = 64 * 1024

    def tokens(self) -> list[bytes]:
        return _YAML_TOKENS


class PolicyHarness(_ConfigHarness):
    """Input: one byte choosing the shipped policy file, then its new content. The folder holds that one file
    (an agreement, or the restrictions with no agreement); the loader, the scan and ``policies check``'s
    cross-reference checks read it."""

    name = "policy"

    def __init__(self) -> None:
        self.files = sorted(p for p in _POLICIES.rglob("*.yaml") if p.name != "registry.yaml")
        self.root = scratch() / "policies"
        (self.root / "agreements").mkdir(parents=True)
        problems: list[PolicyFileError] = []
        self.types = _read_types(ROOT / "schemas", problems)
        self.agencies = {a["id"] for a in shipped_registry_document()["agencies"]}
        self._current: Path | None = None

    def seeds(self) -> list[bytes]:
        return [bytes([i]) + path.read_bytes() for i, path in enumerate(self.files)]

    def run(self, data: bytes) -> None:
        if not data:
            return
        source = self.files[data[0] % len(self.files)]
        restrictions = self.root / "restrictions.yaml"
        if self._current is not None:
            self._current.unlink(missing_ok=True)
        if source.name == "restrictions.yaml":
            target = restrictions
        else:
            target = self.root / "agreements" / source.name
            restrictions.write_bytes(b"restrictions: []\n")
        target.write_bytes(data[1:])
        self._current = target
        scan = scan_policies(self.root)
        for problem in scan.problems:
            if not isinstance(problem, PolicyFileError) or not problem.path.startswith(str(self.root)):
                raise RuleBroken("a policy problem does not name its file", str(problem)[:200])
        try:
            loaded = load_policies(self.root)
        except PolicyFileError as exc:
            if not scan.problems:
                raise RuleBroken("load_policies refused what scan_policies accepted", str(exc)[:200]) from exc
            _names_the_file(exc, self.root)
        else:
            if scan.problems:
                raise RuleBroken("load_policies accepted what scan_policies refused")
            if loaded != scan.policy_set:
                raise RuleBroken("load_policies and scan_policies disagree")
        for issue in find_issues(scan.policy_set, self.types, self.agencies):
            _names_the_file(scan.locate(issue), self.root)


def _keyed_registry() -> bytes:
    """The shipped registry with a signing key for every identity and an encryption key for every agency."""
    document = shipped_registry_document()
    signers = fixed_signers()
    for section in ("agencies", "services"):
        for identity in document.get(section, []):
            signer = signers[identity["id"]]
            identity["signing_keys"] = [{"key_id": signer.key_id, "public_key": signer.verifier_key(),
                                         "valid_from": "2025-06-01T12:00:00+00:00"}]
            if section == "agencies":
                key = fixed_encryption_key(identity["id"])
                raw = base64.b64encode(key.public_key.public_bytes_raw()).decode()
                identity["encryption_key"] = {"key_id": key.key_id, "public_key": raw,
                                              "valid_from": "2025-06-01T12:00:00+00:00"}
    return yaml.safe_dump(document, sort_keys=False).encode()


class RegistryHarness(_ConfigHarness):
    """The registry file as the trust registry, ``policies check``'s YAML reader and the topic planner read it."""

    name = "registry"

    def __init__(self) -> None:
        self.root = scratch()
        self.path = self.root / "registry.yaml"
        (self.root / "schemas").mkdir()

    def seeds(self) -> list[bytes]:
        seeds = [(_POLICIES / "registry.yaml").read_bytes(), _keyed_registry()]
        for seed in seeds:  # the material is sound
            Registry.from_yaml(seed.decode(), source="seed")
        return seeds

    def run(self, data: bytes) -> None:
        self.path.write_bytes(data)
        for read, error in ((lambda: Registry.load(self.path), RegistryFileError),
                            (lambda: read_yaml(self.path), PolicyFileError),
                            (lambda: discover_inputs(self.root / "schemas", self.path, self.root / "nowhere"),
                             TopicSpecError)):
            try:
                read()
            except error as exc:
                _names_the_file(exc, self.path)


_INPUTS = TopicInputs(("population.address-changed", "tax.income-assessed"), ("statistics-office", "tax-board"),
                      ("business.company-registered",))


class TopicsHarness(_ConfigHarness):
    """The topic spec: loaded, then expanded for a three-broker cluster (which may refuse with a ConfigError)."""

    name = "topics"

    def __init__(self) -> None:
        self.path = scratch() / "topics.yaml"

    def seeds(self) -> list[bytes]:
        return [(ROOT / "deploy" / "topics.yaml").read_bytes()]

    def run(self, data: bytes) -> None:
        self.path.write_bytes(data)
        try:
            spec = load_spec(self.path)
        except TopicSpecError as exc:
            _names_the_file(exc, self.path)
            return
        # A spec that validates but names, say, an unknown co-partition group is refused when expanded, typed.
        with contextlib.suppress(ConfigError):
            expand(spec, _INPUTS, brokers=3)


def connector_seeds() -> dict[str, bytes]:
    """One example config per connector kind, from the connector guide's YAML blocks."""
    text = (ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
    found: dict[str, bytes] = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        lines = block.splitlines()
        indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
        body = "\n".join(x[indent:] for x in lines) + "\n"
        match = re.search(r"^kind: ([a-z-]+)", body, flags=re.MULTILINE)
        if match and match.group(1) in KINDS:
            found.setdefault(match.group(1), body.encode())
    return found


class ConnectorHarness(_ConfigHarness):
    """Input: one byte choosing the connector kind, then the config file; read with that kind's model."""

    name = "connector"

    def __init__(self) -> None:
        self.path = scratch() / "connector.yaml"
        self.kinds = sorted(KINDS)
        self.models: dict[str, type[ConnectorConfig]] = {name: KINDS[name].model() for name in self.kinds}

    def seeds(self) -> list[bytes]:
        examples = connector_seeds()
        return [bytes([self.kinds.index(name)]) + body for name, body in sorted(examples.items())]

    def run(self, data: bytes) -> None:
        if not data:
            return
        name = self.kinds[data[0] % len(self.kinds)]
        self.path.write_bytes(data[1:])
        try:
            load_config(self.path, self.models[name], kind=name)
        except ConnectorConfigError as exc:
            _names_the_file(exc, self.path)


class SafeparseHarness(_ConfigHarness):
    """The shared reader on its own, as YAML and as JSON (the schemas' .avsc files are read as JSON)."""

    name = "safeparse"

    def __init__(self) -> None:
        self.path = scratch() / "file.yaml"

    def seeds(self) -> list[bytes]:
        return [(_POLICIES / "restrictions.yaml").read_bytes(),
                (ROOT / "schemas" / "population" / "address-changed" / "0001.avsc").read_bytes()]

    def run(self, data: bytes) -> None:
        self.path.write_bytes(data)
        for read in (safeparse.read_yaml, safeparse.read_json):
            try:
                read(self.path)
            except safeparse.SafeParseError as exc:
                if exc.path != str(self.path):
                    raise RuleBroken("a SafeParseError does not name the file", str(exc)[:200]) from exc
