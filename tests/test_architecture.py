"""The package's shape: its import graph, built from the source, has no cycle and points down the
layers; function-local imports say why; no module grows past a sitting's reading without saying
why. Each check is also run on a small broken graph, to show that it can fail."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reactlib

PACKAGE = Path(reactlib.__file__).parent

LAYERS = (
    ("base", ("reactlib._lazy", "reactlib.errors", "reactlib.paths", "reactlib.config",
              "reactlib.runtime")),
    ("face", ("reactlib.face",)),
    ("data", ("reactlib.data",)),
    ("engines", ("reactlib.diffusion", "reactlib.train", "reactlib.online")),
    ("models", ("reactlib.models",)),
    ("measures", ("reactlib.metrics", "reactlib.rules", "reactlib.criteria")),
    ("suite", ("reactlib.suite", "reactlib.__main__")),
)  # fmt: skip
"""Bottom to top: a module may import its own layer and the layers below (docs/design.md)."""

LONG_MODULE = 700
"""Lines past which a module's docstring must say why it is one module."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def targets(node: ast.stmt, name: str, is_init: bool, known: set[str]) -> list[str]:
    """The package modules one import statement of module ``name`` imports. ``from a import b``
    counts as an import of ``a.b`` when that is a module, else of ``a``; importing ``a.b.c`` also
    runs the ``__init__`` of ``a.b``, counted as an import of ``a.b`` when it is another
    package."""
    own_package = name if is_init else name.rpartition(".")[0]
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = own_package.split(".")[: len(own_package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [
            f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
            for alias in node.names
        ]
    else:
        return []
    found = []
    for target in names:
        if target not in known:
            continue
        parent = target.rpartition(".")[0]
        if parent in known and parent != "reactlib" and not name.startswith(parent):
            found.append(parent)
        if target != name:
            found.append(target)
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that module ``name`` imports, from every import statement at any
    depth (inside functions and ``TYPE_CHECKING`` blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_init = path.name == "__init__.py"
    return {t for node in ast.walk(tree) for t in targets(node, name, is_init, known)}


def graph(found: dict[str, Path]) -> dict[str, set[str]]:
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle reached by a depth-first search (enough to name one per loop)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def layer(name: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{name} belongs to no layer of LAYERS: add it")


def upward(edges: dict[str, set[str]]) -> list[str]:
    return [
        f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]})"
        for a, targets in sorted(edges.items())
        if a != "reactlib"
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]


# --- The package -----------------------------------------------------------------------------


def test_the_import_graph_sees_the_function_local_imports():
    """The graph includes imports inside functions (the CLI's handlers import the models)."""
    edges = graph(modules())
    assert "reactlib.models.registry" in edges["reactlib.suite.cli.models"]
    assert "reactlib.data.corpus" in edges["reactlib.models.reactdiff"]


def test_no_import_cycle():
    assert cycles(graph(modules())) == []


def test_imports_point_down_the_layers():
    assert upward(graph(modules())) == []


def test_package_init_files_import_nothing_but_the_lazy_helper():
    """``__init__`` files name their modules lazily, so importing one module never imports its
    siblings (and a package never sits in a cycle with its own modules)."""
    for name, path in modules().items():
        if path.name == "__init__.py" and name != "reactlib.suite.cli":
            assert graph({name: path, "reactlib._lazy": PACKAGE / "_lazy.py"})[name] <= {
                "reactlib._lazy"
            }, name


def test_the_package_has_a_folder_per_layer():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {"face", "data", "models", "metrics", "suite"} <= folders


def test_function_local_imports_of_the_package_say_why():
    """A function-local import of the package is for a heavy dependency, never to hide a cycle,
    and a comment on its line says so."""
    known = set(modules())
    silent = []
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                local = targets(node, name, path.name == "__init__.py", known)
                if local and "#" not in lines[node.lineno - 1]:
                    silent.append(f"{name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert silent == []


def test_long_modules_say_why_at_their_top():
    long = {}
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > LONG_MODULE:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "one module" not in doc:
                long[name] = text.count("\n")
    assert long == {}, "say in the docstring why it is one module (the words 'one module')"


def test_transvae_does_not_import_reactdiff():
    edges = graph(modules())
    assert (
        not {"reactlib.models.reactdiff", "reactlib.models.reactdiff_net"}
        & edges["reactlib.models.transvae"]
    )


# --- The checks can fail -----------------------------------------------------------------------


def _write(folder: Path, files: dict[str, str]) -> dict[str, Path]:
    out = {}
    for name, text in files.items():
        path = folder / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out[name] = path
    return out


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    files = _write(
        tmp_path,
        {
            "reactlib.face.a": "from reactlib.data import b\n",
            "reactlib.data.b": "def f():\n    from reactlib.face import a  # hidden\n",
        },
    )
    edges = graph(files)
    assert cycles(edges) == [["reactlib.data.b", "reactlib.face.a", "reactlib.data.b"]]
    assert upward(edges) == ["reactlib.face.a (face) imports reactlib.data.b (data)"]


def test_a_package_init_is_an_import_of_its_package(tmp_path):
    files = _write(
        tmp_path,
        {
            "reactlib.models.__init__": "from reactlib.models import m\n",
            "reactlib.models.m": "import reactlib.face.x\n",
            "reactlib.face.x": "from reactlib.models import m\n",
        },
    )
    named = {k.removesuffix(".__init__"): v for k, v in files.items()}
    edges = graph(named)
    assert "reactlib.models" in edges["reactlib.face.x"]
    assert cycles(edges)


def test_every_short_name_is_a_module_and_every_export_exists():
    """``rl.<name>`` reaches every module by its short name, and the names the package
    ``__init__`` files export lazily all exist where they point."""
    import importlib

    from reactlib import data, models

    found = modules()
    for name, path in reactlib.MODULES.items():
        assert path in found and getattr(reactlib, name) is importlib.import_module(path), name
    for package in (data, models):
        for name in package.__dir__():
            if not name.startswith("_") and name.isidentifier():
                assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        reactlib.nothing  # noqa: B018
