"""The layers of gateway_app, as rules on its import graph.

The graph is read from the source with `ast` (nothing is imported, so an import inside a function or
under TYPE_CHECKING counts like any other): every `import`/`from ... import`, relative or absolute,
anywhere in a module. The rules (docs/architecture.md draws them):
- the data plane (`proxy/`) knows the node's cluster only through protocols: nothing from `cluster/`;
- `protocol/` is the Kafka wire and its rewriting: nothing from `proxy/` or `cluster/`;
- `config.py` is settings alone: nothing from `cluster/`;
- no import cycle anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "gateway_app"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# (importing modules, modules they must not import): a name covers the module and everything below it
FORBIDDEN = [
    ("gateway_app.proxy", "gateway_app.cluster"),
    ("gateway_app.protocol", "gateway_app.proxy"),
    ("gateway_app.protocol", "gateway_app.cluster"),
    ("gateway_app.config", "gateway_app.cluster"),
]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py below root (a package is its __init__.py)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lands in: itself, or the longest known prefix (`pkg.mod.attr` -> `pkg.mod`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports, wherever in the file the import stands."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import name`: a submodule pkg.name if there is one, else an attribute of pkg
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin for alias in node.names]
        else:
            continue
        found.update(target for name in targets if (target := _known(name, modules)) is not None)
    found.discard(module)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def _within(module: str, area: str) -> bool:
    return module == area or module.startswith(area + ".")


def forbidden_imports(graph: dict[str, set[str]], rules: list[tuple[str, str]]) -> list[str]:
    return sorted(f"{module} imports {target} ({area} must not import {banned})"
                  for module, targets in graph.items() for target in targets
                  for area, banned in rules if _within(module, area) and _within(target, banned))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:  # the package has a few dozen modules: recursion depth is no concern
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


# --- the rules on gateway_app ------------------------------------------------------------------------

def test_the_graph_is_read_from_every_module():
    graph = import_graph(ROOT, PACKAGE)
    assert {"gateway_app.app", "gateway_app.proxy.connection", "gateway_app.cluster.topology"} <= set(graph)
    assert "gateway_app.proxy.routes" in graph["gateway_app.proxy.connection"]  # a relative import is seen


def test_no_layer_imports_what_it_must_not():
    found = forbidden_imports(import_graph(ROOT, PACKAGE), FORBIDDEN)
    assert not found, "\n".join(found)


def test_no_import_cycle():
    found = cycles(import_graph(ROOT, PACKAGE))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in found)


# --- the checker itself, on a package written for it -------------------------------------------------

@pytest.fixture
def sample(tmp_path: Path) -> Path:
    files = {
        "__init__.py": "",
        "config.py": "import os\n",
        "proxy/__init__.py": "",
        "proxy/server.py": "from ..config import X\n\ndef late():\n    from ..cluster import topology\n",
        "proxy/handover.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .server import Gateway\n",
        "protocol/__init__.py": "",
        "protocol/wire.py": "import pkg.proxy.server as server\n",
        "cluster/__init__.py": "from . import topology\n",
        "cluster/topology.py": "from pkg.cluster.mapping import assign\n",
        "cluster/mapping.py": "from .topology import nothing\nfrom .. import config\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    return tmp_path / "pkg"


def test_every_kind_of_import_is_an_edge(sample: Path):
    graph = import_graph(sample, "pkg")
    assert graph["pkg.proxy.server"] == {"pkg.config", "pkg.cluster.topology"}  # relative; inside a function
    assert graph["pkg.proxy.handover"] == {"pkg.proxy.server"}  # under TYPE_CHECKING
    assert graph["pkg.protocol.wire"] == {"pkg.proxy.server"}  # absolute, `import ... as`
    assert graph["pkg.cluster"] == {"pkg.cluster.topology"}  # `from . import x` in a package's __init__
    assert graph["pkg.cluster.mapping"] == {"pkg.cluster.topology", "pkg.config"}  # `from .. import module`
    assert graph["pkg.config"] == set()  # only the package's own modules count


def test_forbidden_imports_and_cycles_are_named(sample: Path):
    graph = import_graph(sample, "pkg")
    rules = [("pkg.proxy", "pkg.cluster"), ("pkg.protocol", "pkg.proxy")]
    assert forbidden_imports(graph, rules) == [
        "pkg.protocol.wire imports pkg.proxy.server (pkg.protocol must not import pkg.proxy)",
        "pkg.proxy.server imports pkg.cluster.topology (pkg.proxy must not import pkg.cluster)",
    ]
    assert cycles(graph) == [["pkg.cluster.mapping", "pkg.cluster.topology"]]
