"""The import rule of DESIGN section 1, checked on the source: imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "broker"

# layer -> broker modules it may import (by prefix); lower layers never import higher ones
BASE = (
    "broker.errors",
    "broker.logs",
    "broker.metrics",
    "broker.http_rules",
    "broker.manifest",
    "broker.config",
    "broker.oauth",
    "broker.crypto",
    "broker.webhooks",
)  # the pure layer, as a whole; PURE below orders it
STORE = (*BASE, "broker.store")
SERVICES = (
    *BASE,
    "broker.store.base",
    "broker.store.cache",
    "broker.store.keys",
    "broker.store.rewrap",
    "broker.store.sealed",
    "broker.services",
)
WEB = (*SERVICES, "broker.web", "broker.store")  # web/app.py opens the store (composition root)
ANYTHING = ("broker",)
# runs in connector processes: nothing of the server (the URL rules are pure and shared)
SDK = ("broker.errors", "broker.http_rules", "broker.runtime")
# third-party packages that do I/O; the pure layers must not touch them
IO_PACKAGES = ("aiohttp", "redis", "socket", "sqlite3", "asyncio")


# The pure layer is ordered too: each unit may import only the ones named here (and itself).
PURE: dict[str, tuple[str, ...]] = {
    "broker.errors": (),
    "broker.logs": ("broker.errors",),
    "broker.metrics": ("broker.errors",),
    "broker.oauth": ("broker.errors",),
    "broker.crypto": ("broker.errors",),
    "broker.webhooks": ("broker.errors",),
    "broker.http_rules": ("broker.errors",),
    "broker.manifest": ("broker.errors", "broker.http_rules"),
    "broker.config": ("broker.errors", "broker.logs"),
}


def pure_unit(module: str) -> str | None:
    return next((u for u in PURE if module == u or module.startswith(u + ".")), None)


def layer_of(module: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allowed broker imports, forbidden third-party imports) for a module."""
    unit = pure_unit(module)
    if unit is not None:
        return (unit, *PURE[unit]), IO_PACKAGES
    if module.startswith("broker.store"):
        return STORE, ("aiohttp",)
    if module.startswith("broker.services"):
        return SERVICES, ()
    if module.startswith("broker.web"):
        return WEB, ()
    if module.startswith(("broker.runtime", "broker.testing")):
        return SDK, ("redis", "cryptography", "sqlite3")
    return ANYTHING, ()  # cli/, the composition root


def imports_of(path: Path, module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this package
                base = module.rsplit(".", node.level)[0]
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                # `from broker.manifest import cron` imports broker.manifest.cron
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_point_one_way(module: str, path: Path) -> None:
    allowed, forbidden_io = layer_of(module)
    for imported in imports_of(path, module):
        if imported.startswith("broker"):
            assert imported.startswith(allowed), f"{module} must not import {imported}"
        else:
            top = imported.split(".")[0]
            assert top not in forbidden_io, f"{module} must not import {top} (I/O in a pure layer)"


def test_only_composition_roots_name_backends() -> None:
    roots = ("broker.web.app", "broker.cli")
    for module, path in modules():
        if module.startswith(("broker.store", *roots)):
            continue
        for imported in imports_of(path, module):
            assert not imported.startswith(("broker.store.sqlite", "broker.store.redis")), (
                f"{module} names a concrete store backend ({imported})"
            )
            if module.startswith("broker.services"):
                assert imported != "broker.store", (
                    f"{module} must use broker.store.base, not open_store"
                )


def test_only_the_store_reaches_under_the_sealed_layer() -> None:
    # `SealedStore.inner` holds sealed bytes: whatever works on them (the rewrap) is an
    # operation of the sealed layer and lives in broker/store
    for module, path in modules():
        if module.startswith("broker.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            assert not (isinstance(node, ast.Attribute) and node.attr == "inner"), (
                f"{module}:{node.lineno} uses SealedStore.inner"
            )


SERVICES_DIR = PACKAGE / "services"
SERVICE_PACKAGES = sorted(init.parent.name for init in SERVICES_DIR.glob("*/__init__.py"))


def test_service_packages_are_entered_through_their_entry_point() -> None:
    """Inside services/, a subpackage (connect, events, refresh) is imported through its
    `__init__` (`from broker.services import refresh`), never one of its inner modules."""
    assert SERVICE_PACKAGES, "no subpackage under broker/services"
    for module, path in modules():
        if not module.startswith("broker.services"):
            continue
        for imported in imports_of(path, module):
            for package in SERVICE_PACKAGES:
                prefix = f"broker.services.{package}"
                if (
                    module == prefix
                    or module.startswith(prefix + ".")
                    or not (imported.startswith(prefix + "."))
                ):
                    continue
                inner = imported.removeprefix(prefix + ".").split(".")[0]
                assert not (SERVICES_DIR / package / f"{inner}.py").exists(), (
                    f"{module} imports {imported}: use the entry point {prefix}"
                )


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import aiohttp\nfrom broker.web import app\n")
    allowed, forbidden = layer_of("broker.crypto.bad")
    found = imports_of(bad, "broker.crypto.bad")
    assert "aiohttp" in forbidden and "aiohttp" in found
    assert not "broker.web".startswith(allowed)


def import_graph() -> dict[str, set[str]]:
    """Module -> the broker modules it imports, each import resolved to the module that
    runs (`from broker.manifest import Manifest` is broker.manifest, the package's
    `__init__`). Imports inside functions count: hiding a cycle there is still a cycle."""
    known = {module for module, _ in modules()}

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules():
        found = {resolve(i) for i in imports_of(path, module) if i.startswith("broker")}
        graph[module] = {m for m in found if m is not None and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next((e for e in edges if e in graph), None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_anywhere() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_inside_a_layer() -> None:
    graph = {
        "broker.services.a": {"broker.services.b"},
        "broker.services.b": {"broker.services.c"},
        "broker.services.c": {"broker.services.a", "broker.errors"},
        "broker.errors": set(),
    }
    assert cycles(graph) == [["broker.services.a", "broker.services.b", "broker.services.c"]]
    assert cycles({**graph, "broker.services.c": {"broker.errors"}}) == []


def test_the_pure_layer_is_ordered() -> None:
    allowed, _ = layer_of("broker.oauth.token")
    assert "broker.errors.x".startswith(allowed)
    assert not "broker.manifest".startswith(allowed)
    assert not "broker.crypto.aead".startswith(layer_of("broker.manifest.models")[0])
    assert "broker.logs".startswith(layer_of("broker.config")[0])
