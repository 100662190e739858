"""The structure the code keeps: the workdir's layout is spelled in apo_core/workdir.py alone,
no module of apo_core/ imports a package above its own, and each package lists its modules."""

import ast
import re
from pathlib import Path

import pytest

from apo_core import workdir

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "apo_core" / "workdir.py"


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py") if p != OWNER)


def _string_parts(tree: ast.AST):
    """Every string literal of a module, f-strings by their literal parts; docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def _path_joins(tree: ast.AST):
    """The string literals joined with ``/`` onto a path that names the workdir (other
    folders, e.g. a LeRobot dataset's meta/episodes, have names of their own)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and "workdir" in ast.unparse(node.left):
            if isinstance(node.right, ast.Constant) and isinstance(node.right.value, str):
                yield node.right.lineno, node.right.value


def test_no_module_spells_a_workdir_name():
    """A file name or prefix of the workdir (``evaluation.json``, ``round-``, ``train.work``,
    ...) in a literal, or one of its folders (``episodes``, ``rounds``, ...) joined into a
    path, anywhere in apo_core/, flows/ or tasks/ but its owner."""
    found = []
    for path in _modules("apo_core", "flows", "tasks"):
        tree = ast.parse(path.read_text())
        named = [(line, text) for line, text in _string_parts(tree)
                 if set(re.split(r"[/*{}]", text)) & set(workdir.FILE_NAMES)]
        joined = [(line, text) for line, text in _path_joins(tree) if text.strip("/") in workdir.FOLDER_NAMES]
        found += [f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in named + joined]
    assert not found, "workdir names spelled outside apo_core/workdir.py:\n" + "\n".join(found)


# Inside apo_core, a package may import those at its level or below; higher ones never. A
# policy's configuration classes sit with its model (LeRobot's layout) but at the config's level.
LEVELS = {"errors": 0, "workdir": 0, "config": 1, "policy.configuration": 1, "labels": 2, "statistics": 2,
          "sampler": 2, "objectives": 2, "action_tokenizer": 2, "fast_tokenizer": 2, "stored": 2, "envs": 3,
          "actors": 4, "human": 5, "recording": 6, "data": 7, "policy": 8, "evaluate": 9, "training": 9,
          "registry": 9, "loop": 10}


def _level(module: str) -> int:
    """The level of ``apo_core.<package>...`` (or of a file's dotted path below apo_core/)."""
    parts = module.removeprefix("apo_core.").split(".")
    if parts[0] == "policy" and len(parts) > 1 and parts[1].startswith("configuration"):
        return LEVELS["policy.configuration"]
    return LEVELS[parts[0]]


def _apo_imports(tree: ast.AST):
    """(line, module) of every import of apo_core, those only a type checker reads left out."""
    checked_only = {id(n) for node in ast.walk(tree)
                    if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
                    for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in checked_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("apo_core"):
            names = [node.module] if node.module != "apo_core" else [f"apo_core.{a.name}" for a in node.names]
            yield from ((node.lineno, name) for name in names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("apo_core."))


@pytest.mark.parametrize("path", _modules("apo_core") + [OWNER], ids=lambda p: str(p.relative_to(ROOT)))
def test_apo_core_imports_point_down(path):
    """Each module imports only its own package's level or lower ones (functions' imports
    included): no cycle between packages, and apo_core never imports Prefect or Ray."""
    own = ".".join(path.relative_to(ROOT / "apo_core").with_suffix("").parts)
    if own == "__init__":
        return
    tree = ast.parse(path.read_text())
    upward = [f"line {line}: {name}" for line, name in _apo_imports(tree) if _level(name) > _level(own)]
    assert not upward, f"{path.relative_to(ROOT)} imports a higher package: {upward}"
    outside = [a.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for a in ([ast.alias(node.module or "")] if isinstance(node, ast.ImportFrom) else node.names)
               if a.name.split(".")[0] in ("prefect", "ray", "prefect_ray")]
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


PACKAGES = sorted({p.parent for p in _modules("apo_core", "flows", "tasks") if p.name == "__init__.py"})


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_package_docstring_lists_its_modules(package):
    """Each package's index names every module and subpackage it holds."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    members = [p.name for p in package.glob("*.py") if not p.name.startswith("__")]
    members += [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
    missing = [name for name in members if name not in doc]
    assert not missing, f"{package.relative_to(ROOT)}/__init__.py does not list {missing}"
