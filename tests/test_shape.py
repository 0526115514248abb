"""The shape of the code, read from the tree with ``ast``: no function over 60 lines in the
packages of services/ and libs/, no import cycle between the modules of any package, and the
README's layout section that names the tree as it is."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
# Functions over the limit, each named with why; empty: none is.
TOO_LONG_FOR_NOW: set[str] = set()
# Every installable Python package of the repository: (its folder, its import name).
PACKAGES = (
    ("libs/common", "duochat_common"),
    ("libs/testing", "duochat_testing"),
    ("services/auth", "duochat_auth"),
    ("services/boards", "duochat_boards"),
    ("services/chat", "duochat_chat"),
    ("services/notify", "duochat_notify"),
    ("embedded", "duochat_embedded"),
    ("lambdas/scheduler", "duochat_scheduler"),
    ("infra/cdk", "duochat_infra"),
)


def package_sources(root: str) -> Iterator[Path]:
    """The Python files of the packages under ``root`` (services/ or libs/), not their tests."""
    for path in sorted((REPO / root).rglob("*.py")):
        parts = path.relative_to(REPO).parts
        if "tests" not in parts and "node_modules" not in parts:
            yield path


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """Every function and method of ``tree`` by its qualified name (``Class.method``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{node.name}", node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def long_functions() -> dict[str, int]:
    found = {}
    for root in ("services", "libs"):
        for path in package_sources(root):
            for name, node in functions(ast.parse(path.read_text(), str(path))):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1  # from `def` to its last line
                if lines > MAX_FUNCTION_LINES:
                    found[f"{path.relative_to(REPO)}:{name}"] = lines
    return found


def test_no_function_is_over_60_lines() -> None:
    found = long_functions()
    new = {name: lines for name, lines in found.items() if name not in TOO_LONG_FOR_NOW}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them): {new}"
    # A function of the list that got short leaves the list with it.
    assert TOO_LONG_FOR_NOW <= set(found), TOO_LONG_FOR_NOW - set(found)


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"class C:\n  def long(self):\n{body}\n")
    (name, node), *_ = functions(tree)
    assert name == "C.long"
    assert node.end_lineno is not None and node.end_lineno - node.lineno + 1 > 60


# --- import cycles ------------------------------------------------------------------------


def module_names(folder: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (``a.b`` for a/b.py, ``a`` for a/__init__.py) by name."""
    base = folder / package
    modules = {}
    for path in base.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if "tests" in parts or "migrations" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that runs, at module level or in a function; not the ones only a type
    checker reads (``if TYPE_CHECKING:``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for other in node.orelse for n in _import_nodes(other))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _import_nodes(node)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the same package that module ``name`` imports: ``from a import b`` is
    a.b when that is a module, else a; ``import a.b`` is a.b. (Python runs the parents' own
    ``__init__`` too, but a module reaching into its own package is no cycle.)"""
    is_package = path.name == "__init__.py"
    targets: list[str] = []
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = name.split(".") if is_package else name.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        targets += [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for alias in node.names
        ]
    return {target for target in targets if target in modules and target != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the modules along it (the first again at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("folder, package", PACKAGES, ids=[p for _, p in PACKAGES])
def test_no_import_cycle_in_a_package(folder: str, package: str) -> None:
    modules = module_names(REPO / folder, package)
    assert len(modules) > 1, f"found no modules of {package} in {folder}"
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.d\nimport pkg.a\n"
    )
    (package / "d.py").write_text("import pkg.c\n")
    modules = module_names(tmp_path, "pkg")
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}  # not pkg.d: read by the type checker only
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]


# --- the README's layout ------------------------------------------------------------------


def readme_layout() -> list[str]:
    """The first word of each line of the README's layout block (the folders it names)."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^### Layout\n+```\n(.*?)\n```", text, flags=re.S | re.M)
    assert match, "README.md has no '### Layout' section with a code block"
    return [line.split()[0] for line in match.group(1).splitlines() if line[:1].strip()]


def tracked_top_level() -> set[str]:
    """The top-level folders git tracks files in (not data/, .run/, node_modules/ ...)."""
    out = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return {line.split("/", 1)[0] for line in out.splitlines() if "/" in line}


def test_the_readme_layout_names_the_tree() -> None:
    named = readme_layout()
    missing = [entry for entry in named if not (REPO / entry).is_dir()]
    assert not missing, f"the README's layout names folders that do not exist: {missing}"
    # Every folder with a pyproject.toml (each service, library and tool package), and every
    # top-level folder, is named itself or through a folder inside it.
    packages = {
        f"{p.parent.relative_to(REPO)}/"
        for p in REPO.glob("*/**/pyproject.toml")
        if not {"node_modules", ".venv"} & set(p.relative_to(REPO).parts)
    }
    top = {f"{name}/" for name in tracked_top_level() if not name.startswith(".")}
    unnamed = sorted(
        entry for entry in packages | top if not any(n.startswith(entry) for n in named)
    )
    assert not unnamed, f"the README's layout leaves out: {unnamed}"
