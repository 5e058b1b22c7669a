"""The core's modules import one another without cycles (lazy imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import vmc_cli

PACKAGE = Path(vmc_cli.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each vmc_cli module's imports of other vmc_cli modules, wherever in the file they are."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found.update(n for n in names if n in modules and n != name)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_finder_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_vmc_cli_has_no_import_cycle():
    graph = _imports()
    assert "vmc_cli.io.clips" in graph and "vmc_cli.io.video" in graph["vmc_cli.commands.evaluate"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


# ---------------------------------------------------------------------------------------
# backends: no registered backend imports another (a shared base package may be imported)
# ---------------------------------------------------------------------------------------
ROOT = PACKAGE.parent


def registered_packages(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Entry-point name -> top-level package of every backend in ``[project.entry-points.vmc]``."""
    import tomllib

    group = tomllib.loads(pyproject.read_text())["project"]["entry-points"]["vmc"]
    return {name: target.split(":")[0].split(".")[0] for name, target in group.items()}


def backend_imports(folder: Path, package: str) -> set[tuple[str, str]]:
    """(file, top-level package) for every absolute import in ``folder`` (the package
    ``package``), wherever in a file it is; relative imports stay inside the package."""
    found = set()
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops = [node.module.split(".")[0]]
            elif isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            else:
                continue
            found.update((path.relative_to(folder.parent).as_posix(), top) for top in tops if top != package)
    return found


#: the one backend built on others by design: ``shapes-wan`` is the ``wan`` backend on a model
#: trained on the ``shapes`` world (its clips and measures), issue #31
EXTENDS = {"vmc_shapes_wan": {"vmc_wan", "vmc_shapes"}}


def cross_backend_imports(backends_dir: Path, registered: set[str], extends: dict | None = None) -> list[str]:
    """``file imports package`` for each import of a registered backend package by another
    (other than those ``extends`` allows)."""
    extends = extends or {}
    return sorted(f"{file} imports {top}" for package in sorted(registered) if (backends_dir / package).is_dir()
                  for file, top in backend_imports(backends_dir / package, package)
                  if top in registered and top not in extends.get(package, ()))


def test_the_backend_check_sees_a_cross_import(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "base").mkdir()
    (tmp_path / "a" / "__init__.py").write_text("import base\nfrom . import model\n")
    (tmp_path / "a" / "model.py").write_text("def f():\n    from b.unet import UNet  # lazy imports count\n")
    (tmp_path / "b" / "__init__.py").write_text("from base.x import y\nimport a.model as m\n")
    assert cross_backend_imports(tmp_path, {"a", "b"}) == ["a/model.py imports b", "b/__init__.py imports a"]
    (tmp_path / "a" / "model.py").write_text("from base import y\n")
    (tmp_path / "b" / "__init__.py").write_text("from base.x import y\n")
    assert cross_backend_imports(tmp_path, {"a", "b"}) == []


def test_no_registered_backend_imports_another():
    registered = set(registered_packages().values())
    assert {"vmc_tiny", "vmc_show1", "vmc_shapes"} <= registered and "vmc_latent" not in registered
    assert cross_backend_imports(ROOT / "backends", registered, EXTENDS) == []
    assert set(EXTENDS) <= registered  # the allowance names a registered backend, not a leftover


def test_shared_base_packages_say_so():
    """A package under backends/ that no entry point registers is a shared base, and its
    docstring says so; or a backend in the making whose docstring says it is "not registered
    yet" (its own tests make it directly), which imports no registered backend either."""
    registered = set(registered_packages().values())
    bases = [p for p in sorted((ROOT / "backends").iterdir()) if (p / "__init__.py").is_file()
             and p.name not in registered]
    assert {p.name for p in bases} >= {"vmc_latent", "vmc_pixel"}
    for base in bases:
        doc = ast.get_docstring(ast.parse((base / "__init__.py").read_text())) or ""
        if "not registered yet" in doc.lower():
            assert not {top for _, top in backend_imports(base, base.name)} & registered, base.name
            continue
        assert "shared base" in doc.lower() and "not a plugin" in doc.lower(), base.name
