"""The package's shape: imports point down the pipeline's stages and never run in a circle (docs/DESIGN.md, Layout).

Stages from the top: cli, evaluate, training, inference, models, nn; then data and the foundations (the top-level
modules: audio, config, errors, fileio, phones, progress), which serve every stage. A module may import its own
stage and any stage below it; every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vqaudio"
RANKS = {"foundation": 0, "data": 1, "nn": 2, "models": 3, "inference": 4, "training": 5, "evaluate": 6, "cli": 7}
MAX_LINES = 400  # "modules under about 400 lines"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    """The stage of `vqaudio.x.y`: its folder's name, or "foundation" for a top-level module."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANKS):
        return parts[1]
    return "foundation"


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere in it (`from vqaudio.a import b` counts `vqaudio.a.b`
    when that is a module, else `vqaudio.a`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vqaudio")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vqaudio") and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known and m != "vqaudio"}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {m: imports_of(p, known) - {m} for m, p in files.items()}


def test_every_import_points_down_the_stages() -> None:
    upward = [f"{m} ({stage(m)}) imports {t} ({stage(t)})" for m, targets in import_graph().items() for t in targets
              if m != "vqaudio.__main__" and RANKS[stage(t)] > RANKS[stage(m)]]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_circles() -> None:
    graph, circles = import_graph(), []
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                circles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_modules_stay_readable_in_one_sitting() -> None:
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "modules over ~400 lines:\n" + "\n".join(long)


def test_every_stage_says_what_it_holds_and_may_import() -> None:
    for name in RANKS:
        if name == "foundation":
            continue
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"vqaudio/{name}/__init__.py: say what lives here and what it may import"
