"""The structure drawn from the imports: no cycles, modules and functions of readable size, and
nothing above nstjax/kernels that knows which library runs a kernel."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nstjax"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 65  # not counting the docstring
LONG_ON_PURPOSE: dict[str, str] = {}  # "module.function": why it is kept in one piece


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """nstjax modules ``path`` imports (at any depth: lazy imports are dependencies too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            found |= subs
            if len(subs) < len(node.names):  # names from the module itself
                found.add(node.module)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_modules_and_functions_stay_readable():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    length -= first.end_lineno - first.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_ON_PURPOSE:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def test_only_the_kernels_know_onednn():
    """The backend is named (engine.Program.convolution), never sniffed; oneDNN's names stay in
    nstjax/kernels."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith("nstjax.kernels") or name.startswith("nstjax.bench"):
            continue  # the benchmark reports which kernels ran
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "nstjax.kernels":
                if any(a.name in ("onednn", "conv", "gram") for a in node.names):
                    offenders.append(name)
            if isinstance(node, ast.Import) and any("kernels." in a.name for a in node.names):
                offenders.append(name)
            if isinstance(node, ast.Name) and node.id in ("use_onednn", "convolution_of"):
                offenders.append(name)
    assert offenders == []
