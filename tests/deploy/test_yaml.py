"""Every YAML file under deploy/ parses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.files import DEPLOY, load_all, yaml_files


def test_there_is_yaml_to_check() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in yaml_files()}
    assert {"compose.yaml", "k8s/kustomization.yaml", "k8s/deployment.yaml"} <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} holds no document"
    assert all(isinstance(doc, dict) for doc in docs)


def test_a_broken_file_does_not_parse(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec:\n  containers:\n  - name: broker\n   image: x\n")
    with pytest.raises(yaml.YAMLError):
        load_all(broken)
