"""The structure drawn from the imports: no cycles, modules and functions of readable size, and
nothing above nstjax/kernels that knows which library runs a kernel."""

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nstjax"
SCRIPTS = ROOT / "scripts"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # from the def line to the last, docstring included
MAX_PUBLIC_PARAMETERS = 8  # self/cls not counted; *args and **kwargs count one each
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


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """How many parameters ``function`` takes, ``self``/``cls`` not counted and ``*args`` and
    ``**kwargs`` one each."""
    a = function.args
    positional = [*a.posonlyargs, *a.args]
    count = len(positional) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    return count - (bool(positional) and positional[0].arg in ("self", "cls"))


def _size_problems(module: str, source: str) -> list[str]:
    """What in one module's ``source`` is too large: the module, a function (from its def line
    to its last, docstring included) or a public function's parameter list."""
    lines = len(source.splitlines())
    found = [f"{module}: {lines} lines"] if lines > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        name = f"{module}.{node.name}"
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES and name not in LONG_ON_PURPOSE:
            found.append(f"{name}: {length} lines")
        if not node.name.startswith("_") and _parameters(node) > MAX_PUBLIC_PARAMETERS:
            found.append(f"{name}: {_parameters(node)} parameters")
    return found


def _function(name: str, params: str, lines: int, decorated: bool = False) -> str:
    """Source of a function ``lines`` long, def line to last (a docstring counted)."""
    body = ['    """A docstring."""'] + [f"    x{i} = {i}" for i in range(lines - 2)]
    return "\n".join(["@decorator"] * decorated + [f"def {name}({params}):", *body]) + "\n"


def test_the_checker_finds_oversized_code():
    nine, eight = ", ".join(f"p{i}" for i in range(9)), ", ".join(f"p{i}" for i in range(8))
    source = "\n".join(
        [
            _function("long", "", 61),
            _function("fits", "", 60, decorated=True),  # the decorator is not counted
            _function("many", nine, 3),
            _function("_many_but_private", nine, 3),
            _function("enough", eight, 3),
            _function("starred", f"{', '.join(f'p{i}' for i in range(7))}, *args, **kwargs", 3),
            "class C:",
            textwrap.indent(_function("method", f"self, {eight}", 3), "    "),
            textwrap.indent(_function("also_many", f"cls, {nine}", 3), "    "),
            textwrap.indent(_function("nested_long", "", 61), "    "),
        ]
    )
    assert _size_problems("m", source) == [
        "m.long: 61 lines",
        "m.many: 9 parameters",
        "m.starred: 9 parameters",
        "m.also_many: 9 parameters",
        "m.nested_long: 61 lines",
    ]
    assert _size_problems("m", "x = 1\n" * 401) == ["m: 401 lines"]
    assert _size_problems("m", "x = 1\n" * 400) == []


def test_modules_and_functions_stay_readable():
    """The package and the scripts: no module over 400 lines, no function over 60, no public
    function with more than 8 parameters."""
    scripts = {str(p.relative_to(ROOT).with_suffix("")): p for p in SCRIPTS.rglob("*.py")}
    paths = {**_modules(), **scripts}
    too_large = []
    for name, path in sorted(paths.items()):
        too_large += _size_problems(name, path.read_text())
    assert too_large == []


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
