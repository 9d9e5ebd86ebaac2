"""The host's import graph: no cycles, commands on top of the packages, nothing shipped
importing the tests or the benchmarks."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"soma": REPO / "host" / "soma", "soma_protocol": REPO / "protocol" / "soma_protocol"}
NOT_SHIPPED = {"tests", "benchmarks", "mpexec", "strategies", "fuzzcount", "conftest"}

pytestmark = pytest.mark.cpu


def _modules():
    """Every CPython module of the shipped packages (host/soma/mp runs under MicroPython), by name."""
    modules = {}
    for top, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [top, *path.relative_to(root).with_suffix("").parts]
            if parts[1:2] == ["mp"]:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported(name, path):
    """Every module `name` (at `path`) imports, at its top or inside a function (lazy imports
    count too), relative imports resolved."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


MODULES = _modules()
GRAPH = {
    name: {other for other in _imported(name, path) if other in MODULES and other != name}
    for name, path in MODULES.items()
}


def test_the_import_graph_has_no_cycle():
    done, path = set(), []

    def visit(name):
        if name in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(name) :] + [name]))
        if name in done:
            return
        path.append(name)
        for other in sorted(GRAPH[name]):
            visit(other)
        path.pop()
        done.add(name)

    for name in sorted(GRAPH):
        visit(name)


def test_commands_sit_on_the_packages_never_below_them():
    for name, imported in GRAPH.items():
        into_commands = {other for other in imported if other.startswith("soma.commands.")}
        if name.startswith("soma.commands."):
            assert not into_commands, f"{name} imports another command: {into_commands}"
        else:
            assert not into_commands, f"{name} imports a command: {into_commands}"


def test_the_protocol_package_does_not_depend_on_the_host():
    for name, imported in GRAPH.items():
        # codegen: a development tool run in the repo, writing through the host's atomic writer
        if name.startswith("soma_protocol") and name != "soma_protocol.codegen":
            assert not {other for other in imported if other.split(".")[0] == "soma"}, name


def test_nothing_shipped_imports_the_tests_or_the_benchmarks():
    for name, path in MODULES.items():
        reached = {other.split(".")[0] for other in _imported(name, path)} & NOT_SHIPPED
        assert not reached, f"{name} imports {reached}"


def test_the_check_sees_an_import_cycle(tmp_path, monkeypatch):
    """The cycle check fails on a cycle (so its silence above means something)."""
    monkeypatch.setitem(GRAPH, "soma.errors", GRAPH["soma.errors"] | {"soma.cli"})
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_the_import_graph_has_no_cycle()
