"""The layout keeps its promises: training and service share only contract, nothing imports in a circle,
and no function runs past a screen."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "service", "training")
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    files = (f for package in PACKAGES for f in (ROOT / package).rglob("*.py"))
    return {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f for f in files}


def _imports(module: str, path: Path) -> set[str]:
    """Every module this one imports, at the top or inside a function, resolved to a full name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: None if path.name == "__init__.py" else -1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {d for d in _imports(name, path) if d in modules and d != name and not name.startswith(d + ".")}
        for name, path in modules.items()
    }


def test_training_and_service_never_import_each_other() -> None:
    for name, deps in _graph().items():
        for other in ("service", "training"):
            if not name.startswith(other):
                assert not any(d.startswith(other) for d in deps), f"{name} imports {other}"
        if name.startswith("contract"):
            assert all(d.startswith("contract") for d in deps), f"{name} imports {deps}"


def test_no_module_reaches_itself_through_its_imports() -> None:
    graph = _graph()
    for start in graph:
        seen, frontier = set(), set(graph[start])
        while frontier:
            module = frontier.pop()
            assert module != start, f"{start} imports itself through a circle"
            if module not in seen:
                seen.add(module)
                frontier |= graph.get(module, set())


def test_no_function_runs_past_a_screen() -> None:
    long = []
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
