"""Import contracts: the layers point one way, tools <- agent <- evals, and agent has no circles.

Every import counts, at module level or inside a function (a local import hides a dependency,
it does not remove it). `imagent eval` lives in evals (evals/command.py) and adds itself to the
CLI through an entry point. Shared helpers move down a layer, never sideways.

Circles are checked over all of agent, commands included, and over local imports too: a
function-local import only defers the circle to call time. None is allowed today, so there is
no allowlist. (agent/cli.py loads agent.commands.* by name with importlib, which no parser sees.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved."""
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


def graph() -> dict[str, set[str]]:
    files = [p for layer in ("tools", "agent", "evals") for p in (ROOT / layer).rglob("*.py")]
    mods = {module_name(p): p for p in files}
    return {m: {i for i in imports(p) if i in mods} for m, p in mods.items()}


def layer(module: str) -> str:
    return module.split(".")[0]


def test_tools_import_neither_agent_nor_evals() -> None:
    bad = {m: sorted(i for i in deps if layer(i) in ("agent", "evals"))
           for m, deps in graph().items() if layer(m) == "tools"}
    assert not {m: v for m, v in bad.items() if v}


def test_agent_imports_no_evals() -> None:
    bad = {m: sorted(i for i in deps if layer(i) == "evals")
           for m, deps in graph().items() if layer(m) == "agent"}
    assert not {m: v for m, v in bad.items() if v}


def test_imagent_eval_reaches_the_cli_through_an_entry_point() -> None:
    """`imagent eval` is evals/command.py, found by the CLI through the `imagent.commands` entry point."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["imagent.commands"] == {"eval": "evals.command"}


def test_no_import_circles_inside_agent() -> None:
    g = {m: {d for d in deps if layer(d) == "agent"} for m, deps in graph().items() if layer(m) == "agent"}
    circles = []
    for start in g:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in g.get(node, ()):
                if nxt == start:
                    circles.append(path + [start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not circles, f"import circles: {sorted({' -> '.join(c) for c in circles})[:5]}"


def test_the_contract_sees_local_imports() -> None:
    """The checker itself: a function-local import is found (so the contracts can fail)."""
    deps = graph()["agent.critics"]
    assert "agent.planners" in deps  # imported inside check_specs, not at module level


def test_the_contract_resolves_relative_imports(tmp_path, monkeypatch) -> None:
    """`from ..evals import runner` in agent/x.py is evals.runner; `from . import y` in a package is its own."""
    import tests.test_layers as contract

    monkeypatch.setattr(contract, "ROOT", tmp_path)
    (tmp_path / "agent" / "sub").mkdir(parents=True)
    mod = tmp_path / "agent" / "x.py"
    mod.write_text("from ..evals import runner\nfrom .errors import UserError\n")
    pkg = tmp_path / "agent" / "sub" / "__init__.py"
    pkg.write_text("def f():\n    from . import y\n")
    assert {"evals", "evals.runner", "agent.errors"} <= contract.imports(mod)
    assert "agent.sub.y" in contract.imports(pkg)


MAX_FUNCTION_LINES = 80  # issue 13: a function a newcomer reads in one screen
MAX_FILE_LINES = 520  # "about 500": a file a newcomer reads in one sitting


def sizes(root: Path) -> tuple[list[str], list[str]]:
    """Files of `root` over MAX_FILE_LINES and functions over MAX_FUNCTION_LINES, as 'path:name lines'."""
    long_files, long_functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root.parent)
        if text.count("\n") > MAX_FILE_LINES:
            long_files.append(f"{rel} {text.count(chr(10))}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.name} {n}")
    return long_files, long_functions


def test_agent_files_and_functions_stay_readable() -> None:
    long_files, long_functions = sizes(ROOT / "agent")
    assert not long_files, f"split these along a real seam: {long_files}"
    assert not long_functions, f"split these into named steps: {long_functions}"


def test_the_size_check_can_fail(tmp_path) -> None:
    pkg = tmp_path / "agent"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (pkg / "big.py").write_text(f"def long():\n{body}\n" + "\n" * MAX_FILE_LINES)
    long_files, long_functions = sizes(pkg)
    assert long_files == [f"agent/big.py {MAX_FUNCTION_LINES + 2 + MAX_FILE_LINES - 1}"]
    assert long_functions == [f"agent/big.py:long {MAX_FUNCTION_LINES + 1}"]
