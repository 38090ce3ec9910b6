"""`broker manifest validate PATH...`: check manifest files or folders, every problem listed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.errors import ManifestError
from broker.manifest import load_manifest, manifest_paths


def add_manifest_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    manifest = sub.add_parser("manifest", help="connector manifests").add_subparsers(
        metavar="ACTION"
    )
    validate = manifest.add_parser("validate", help="validate manifest files or folders")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    validate.set_defaults(run=_manifest_validate)


def _manifest_validate(args: argparse.Namespace) -> int:
    files: list[Path] = []
    bad = 0
    for path in args.paths:
        if path.is_dir():
            found = (
                [path / "manifest.json"]
                if (path / "manifest.json").is_file()
                else manifest_paths(path)
            )
            if not found:
                print(f"{path}: no manifest.json found", file=sys.stderr)
                bad += 1
            files.extend(found)
        else:
            files.append(path)
    for file in files:
        try:
            load_manifest(file)
        except ManifestError as exc:
            bad += 1
            for problem in exc.problems:
                print(f"{file}: {problem}")
    print(f"{len(files) - bad} of {len(files)} manifests valid", file=sys.stderr)
    return 1 if bad else 0
