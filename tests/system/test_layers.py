"""The layers point down (docs/architecture.md).

``core`` is the ground and imports no other part; the services (api, ingest, signage, charging,
forecasting, simulators) import core and each other's public names only, never the composition
root (``parkleit``) or the benchmarks; nothing outside tests imports another part's private
(``_``) module or name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = frozenset({"api", "ingest", "signage", "forecasting", "simulators", "charging",
                      "ocpi"})
PARTS = SERVICES | {"core", "parkleit", "benchmarks"}
# What each layer may import of the project's parts (besides its own).
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(), "parkleit": PARTS, "benchmarks": PARTS,
    **{service: SERVICES | {"core"} for service in SERVICES}}


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import; names empty for ``import x``."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def violations(part: str, where: str, source: str) -> list[str]:
    """What the module ``where`` of ``part`` imports against the layers."""
    found = []
    for line, module, names in _imports(ast.parse(source)):
        target, *rest = module.split(".")
        if target not in PARTS or target == part:
            continue
        if target not in ALLOWED[part]:
            found.append(f"{where}:{line} {part} imports {module}")
        private = [piece for piece in [*rest, *names] if piece.startswith("_")]
        if private:
            found.append(f"{where}:{line} imports the private {module}: {', '.join(private)}")
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(path.relative_to(ROOT).parts[0], path) for part in sorted(PARTS)
            for path in sorted((ROOT / part).rglob("*.py"))]


def test_every_part_is_looked_at() -> None:
    looked_at = {part for part, _ in _modules()}
    assert looked_at == PARTS
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert packages <= PARTS | {"tests"}, packages - PARTS  # a new part needs its layer here


def test_layers_point_down() -> None:
    found = [problem for part, path in _modules()
             for problem in violations(part, str(path.relative_to(ROOT)), path.read_text())]
    assert found == []


@pytest.mark.parametrize(("part", "source", "expected"), [
    ("core", "from ingest import IngestService\n", "core imports ingest"),
    ("core", "import parkleit.demo\n", "core imports parkleit.demo"),
    ("api", "from parkleit.embedded import free_port\n", "api imports parkleit.embedded"),
    ("simulators", "from signage._ntcip import MIB\n", "private signage._ntcip: _ntcip"),
    ("benchmarks", "from api import _history\n", "private api: _history"),
])
def test_the_check_finds_what_it_should(part: str, source: str, expected: str) -> None:
    [problem] = violations(part, "x.py", source)
    assert expected in problem
    assert violations(part, "x.py", "from core.status import LotStatus\n") == []
