"""Deployment artefacts generated from the project's own sources of truth.

``python -m exchange.deploy generate`` (``make deploy-generate``) writes the Strimzi resources under
``deploy/kubernetes/`` (topics from ``deploy/topics.yaml``, users and ACLs from the registry and the agreements,
the services) and the Grafana dashboard under ``deploy/grafana/``; ``--check`` fails when a file on disk
differs from what would be generated. Pure apart from reading the inputs and writing the outputs.
"""

from __future__ import annotations

from exchange.deploy.acls import AclRule, KafkaPrincipal, derive_principals
from exchange.deploy.generate import GeneratedFile, generate, stale_files

__all__ = ["AclRule", "GeneratedFile", "KafkaPrincipal", "derive_principals", "generate", "stale_files"]
