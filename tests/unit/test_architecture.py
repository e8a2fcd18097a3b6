"""The layers hold: every import in the code (function-level ones included) is checked with `ast`.

- the API never imports a flow; flows meet only at topics, so a flow never imports another
  (flows/common.py is shared);
- flows never import the bootstrap, and no production code imports the benchmarks;
- `loyalty/`, the pure domain, imports no IO library and nothing of the layers above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "flows", "loyalnest", "connectors", "sinks", "loyalty")
SHARED_FLOW_MODULES = frozenset({"common"})
IO_LIBRARIES = frozenset(
    {
        "confluent_kafka",
        "pymongo",
        "redis",
        "psycopg",
        "psycopg_pool",
        "httpx",
        "starlette",
        "uvicorn",
        "grpc",
        "grpc_health",
        "bytewax",
        "elasticsearch",
        "prometheus_client",
    }
)
ABOVE_THE_DOMAIN = frozenset({"api", "flows", "connectors", "sinks", "loyalnest", "bench"})


def imports(tree: ast.AST, package: str) -> Iterator[tuple[int, str]]:
    """(line, imported name) for every import anywhere in `tree`, code of the package `package`.

    `from a.b import c` yields `a.b.c` (c may be a module or a name in a.b: either way it is
    an import of a.b); relative imports are made absolute."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def refusal(module: str, name: str) -> str | None:
    """Why `module` may not import `name`, or None if it may."""
    layer = module.split(".")[0]
    top = name.split(".")[0]
    if layer == "api" and top == "flows":
        return "the API never imports a flow"
    if layer == "flows" and within(name, "loyalnest.bootstrap"):
        return "a flow never imports the bootstrap"
    if top == "bench":
        return "production code never imports the benchmarks"
    if layer == "flows" and top == "flows":
        own, other = _flow_of(module), _flow_of(name)
        if own not in (None, other) and other not in (None, *SHARED_FLOW_MODULES):
            return "a flow never imports another flow"
    if layer == "loyalty" and top in IO_LIBRARIES:
        return "the pure domain imports no IO library"
    if layer == "loyalty" and top in ABOVE_THE_DOMAIN:
        return "the pure domain imports nothing above it"
    return None


def _flow_of(module: str) -> str | None:
    """flows.points.state -> points; flows.common -> common; flows -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every import in `source` (the code of `module`, an `__init__.py` if `is_package`) that
    breaks a rule, with the rule."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for line, name in imports(ast.parse(source), package):
        why = refusal(module, name)
        if why is not None:
            found.append(f"{module}:{line}: imports {name}: {why}")
    return found


def code_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_code_keeps_its_layers() -> None:
    files = code_files()
    found = [
        v
        for path in files
        for v in violations(
            path.read_text(), module_name(path), is_package=path.name == "__init__.py"
        )
    ]

    assert len(files) > 50  # the walk found the code
    assert found == []


# --- the checker finds what it must, and only that ------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("api.balances", "from flows.points import build", "the API never imports a flow"),
        ("api.app", "def route():\n    import flows.order_archive\n", "the API never imports"),
        ("api.app", "from flows import points", "the API never imports a flow"),
        ("flows.points", "from loyalnest.bootstrap.mongo import x", "never imports the bootstrap"),
        ("flows.points", "from loyalnest import bootstrap", "never imports the bootstrap"),
        ("loyalnest.app", "from bench.http import get", "never imports the benchmarks"),
        ("sinks.mongo", "import bench", "never imports the benchmarks"),
        ("flows.order_archive", "from flows.points import decode_order", "another flow"),
        ("flows.tiers.state", "from flows import referrals", "another flow"),
        ("flows.common", "from flows.points import x", "another flow"),
        ("loyalty.rules", "import redis.asyncio", "imports no IO library"),
        ("loyalty.rules", "def f():\n    from bytewax import operators\n", "no IO library"),
        ("loyalty.ledger", "from confluent_kafka import Producer", "no IO library"),
        ("loyalty.ledger", "from connectors.store import LEDGER", "nothing above it"),
        ("loyalty.ledger", "from loyalnest.settings import Settings", "nothing above it"),
        ("loyalty.sub.x", "from ...api import app", "nothing above it"),
    ],
)
def test_a_planted_violation_is_found(module: str, source: str, rule: str) -> None:
    (found,) = violations(source, module)

    assert rule in found
    assert found.startswith(f"{module}:")


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("flows.points", "from flows.common import Rejected"),
        ("flows.order_archive", "from flows import common"),
        ("flows.tiers.state", "from flows.tiers.rules import bonus"),
        ("flows.points", "from loyalnest.settings import Settings"),
        ("api.app", "from connectors.store import LEDGER"),
        ("loyalnest.app", "from loyalnest.bootstrap.__main__ import bootstrap"),
        ("loyalty.ledger", "from loyalty.limits import MAX_POINTS\nimport decimal, uuid"),
        ("loyalty.commands", "from . import fields"),
        ("loyalty.commands", "from .fields import rate"),
    ],
)
def test_allowed_imports_pass(module: str, source: str) -> None:
    assert violations(source, module) == []


@pytest.mark.parametrize(
    ("module", "is_package", "source", "imported"),
    [
        ("loyalty.rules", False, "from .fields import rate", "loyalty.fields.rate"),
        ("loyalty", True, "from .fields import rate", "loyalty.fields.rate"),
        ("flows.tiers.state", False, "from ..points import build", "flows.points.build"),
        ("flows.tiers", True, "from ..points import build", "flows.points.build"),
    ],
)
def test_relative_imports_are_read_as_absolute(
    module: str, is_package: bool, source: str, imported: str
) -> None:
    package = module if is_package else module.rpartition(".")[0]

    assert [name for _line, name in imports(ast.parse(source), package)] == [imported]


def test_the_line_of_a_function_level_import_is_named() -> None:
    source = "import decimal\n\n\ndef late():\n    import pymongo\n    return pymongo\n"

    assert violations(source, "loyalty.late") == [
        "loyalty.late:5: imports pymongo: the pure domain imports no IO library"
    ]
