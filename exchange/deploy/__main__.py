"""``python -m exchange.deploy generate [--check] [--root DIR]``: write the generated deployment files, or
(``--check``) exit 1 naming each one that is not up to date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exchange.deploy.generate import generate, stale_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchange.deploy", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="write deploy/kubernetes/*.yaml and the Grafana dashboard")
    gen.add_argument("--check", action="store_true", help="change nothing; fail if a file is not up to date")
    gen.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: .)")
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.check:
        stale = stale_files(root)
        for name in stale:
            sys.stderr.write(f"{name}: not up to date; run `make deploy-generate`\n")
        return 1 if stale else 0
    for generated in generate(root):
        target = root / generated.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != generated.text:
            target.write_text(generated.text, encoding="utf-8")
            sys.stdout.write(f"wrote {generated.path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
