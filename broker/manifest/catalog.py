"""The connector catalog: every manifest the broker serves, keyed by connector key.

Loaded once at start from the bundled `connectors/` folder plus `BROKER_CONNECTORS_DIRS`,
each laid out as `<dir>/<key>/manifest.json`. Any invalid manifest, or a key defined twice,
stops the load: a broker that silently skipped a connector would strand its tenants.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from broker.errors import ConfigError, ManifestError, NotFound
from broker.manifest.loader import load_manifest
from broker.manifest.models import Manifest

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "connectors"


def manifest_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/manifest.json"))


@dataclass(frozen=True)
class Catalog:
    manifests: dict[str, Manifest] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)

    def get(self, key: str) -> Manifest:
        try:
            return self.manifests[key]
        except KeyError:
            raise NotFound(f"no connector {key!r}") from None

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self.manifests[k] for k in sorted(self.manifests))

    def __len__(self) -> int:
        return len(self.manifests)


def load_catalog(dirs: Iterable[Path], *, bundled: bool = True) -> Catalog:
    """Raise `ConfigError` listing every broken manifest, missing folder and duplicate key."""
    folders = ([BUNDLED_DIR] if bundled and BUNDLED_DIR.is_dir() else []) + list(dirs)
    catalog = Catalog()
    errors: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            errors.append(f"{folder}: connectors folder does not exist")
            continue
        for path in manifest_paths(folder):
            try:
                manifest = load_manifest(path)
            except ManifestError as exc:
                errors.append(str(exc))
                continue
            if manifest.key in catalog.manifests:
                errors.append(
                    f"{path}: connector {manifest.key!r} is already defined by "
                    f"{catalog.sources[manifest.key]}"
                )
                continue
            catalog.manifests[manifest.key] = manifest
            catalog.sources[manifest.key] = path
    if errors:
        raise ConfigError(
            "invalid connector catalog:\n  " + "\n  ".join(errors),
            [f"connector catalog: {error}" for error in errors],
        )
    return catalog
