"""Dependencies point one way (DESIGN.md section 1), checked by parsing every module with ast.

    genedge (core) <- runtime <- bench;  genedge <- train;  export -> train, export -> runtime

Imports inside ``if TYPE_CHECKING:`` never run and are ignored; ``importlib.import_module``
and ``__import__`` with a constant name count as imports (a string does not hide a dependency).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = {
    "genedge": "genedge",
    "runtime": "genedge.runtime",
    "bench": "genedge.bench",
    "train": "genedge.train",
    "export": "genedge.export",
}
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "tensorrt", "cuda", "pycuda")
CORE_EXEMPT = {"cli.py", "demo.py", "__main__.py"}  # dispatch to stages lazily, by name


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str  # absolute dotted name
    lazy: bool  # inside a function body (runs only when called)


def _package_of(path: Path) -> str:
    rel = path.relative_to(REPO)
    pkg = STAGES[rel.parts[0]]
    sub = list(rel.parts[1:-1])
    return ".".join([pkg, *sub])


def _resolve(node: ast.ImportFrom, package: str) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = package.split(".")
        base = ".".join(
            parts[: len(parts) - node.level + 1] + ([node.module] if node.module else [])
        )
    if node.module is None or node.level:  # `from . import x`: x may be a module
        return [f"{base}.{a.name}" for a in node.names] + [base]
    return [base]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    source = path.read_text(encoding="utf-8")
    return imports_in(source, _package_of(path), str(path.relative_to(REPO)))


def imports_in(source: str, package: str, rel: str) -> list[Import]:
    """Every import in ``source`` (a module of ``package``), with absolute names."""
    tree = ast.parse(source, filename=rel)
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(rel, node.lineno, a.name, lazy) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.extend(Import(rel, node.lineno, m, lazy) for m in _resolve(node, package))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(Import(rel, node.lineno, node.args[0].value, lazy))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def _files(stage: str) -> list[Path]:
    return sorted(p for p in (REPO / stage).rglob("*.py") if ".venv" not in p.parts)


def _top(module: str) -> str:
    return module.split(".")[0]


def _stage(module: str) -> str | None:
    """'core', 'train', 'export', 'runtime', 'bench' for genedge modules; None otherwise."""
    parts = module.split(".")
    if parts[0] != "genedge":
        return None
    if len(parts) > 1 and parts[1] in ("train", "export", "runtime", "bench"):
        return parts[1]
    return "core"


def _violations(stage: str, rule) -> list[str]:
    bad = []
    for path in _files(stage):
        for imp in imports_of(path):
            why = rule(path, imp)
            if why:
                bad.append(f"{imp.file}:{imp.line} imports {imp.module} ({why})")
    return bad


def test_the_parser_sees_what_it_should():
    """Guard the guard: relative, lazy, dynamic and TYPE_CHECKING imports are classified right."""
    src = (
        "from typing import TYPE_CHECKING\nfrom .backend import x\nfrom .. import manifest\n"
        "if TYPE_CHECKING:\n    import torch\n"
        "def f():\n    import onnxruntime\n    importlib.import_module('genedge.export.bundle')\n"
    )
    got = {(i.module, i.lazy) for i in imports_in(src, "genedge.runtime", "runtime/probe.py")}
    assert ("genedge.runtime.backend", False) in got and ("genedge.manifest", False) in got
    assert ("onnxruntime", True) in got and ("genedge.export.bundle", True) in got
    assert not any(m == "torch" for m, _ in got)


def test_core_imports_only_stdlib_numpy_and_core():
    def rule(path: Path, imp: Import) -> str | None:
        if path.name in CORE_EXEMPT:
            return None
        top = _top(imp.module)
        if top in sys.stdlib_module_names or top == "numpy" or imp.module == "__future__":
            return None
        if _stage(imp.module) == "core":
            return None
        return "core is stdlib + numpy + genedge core only"

    assert _violations("genedge", rule) == []


def test_runtime_never_imports_torch_train_export_or_bench():
    def rule(path: Path, imp: Import) -> str | None:
        if _top(imp.module) in ("torch", "torchvision"):
            return "the runtime must work without torch"
        if _stage(imp.module) in ("train", "export", "bench"):
            return "runtime depends on core only"
        if _top(imp.module) in ("onnxruntime", "tensorrt", "cuda") and not imp.lazy:
            return "heavy backends are imported lazily"
        return None

    assert _violations("runtime", rule) == []


def test_bench_does_not_import_train_or_export_at_module_level():
    def rule(path: Path, imp: Import) -> str | None:
        stage = _stage(imp.module)
        if stage == "export":
            return "bench measures bundles through the runtime, not the exporter"
        if not imp.lazy and (stage == "train" or _top(imp.module) in HEAVY):
            return "only lazily, inside the function that needs it"
        return None

    assert _violations("bench", rule) == []


def test_train_does_not_import_export_runtime_or_bench():
    def rule(path: Path, imp: Import) -> str | None:
        if _stage(imp.module) in ("export", "runtime", "bench"):
            return "train depends on core only"
        return None

    assert _violations("train", rule) == []


def test_export_verifies_through_the_runtime():
    """export -> runtime is a real edge: parity runs the runtime's backends, not its own runner."""
    uses = {
        imp.module
        for path in _files("export")
        for imp in imports_of(path)
        if _stage(imp.module) == "runtime"
    }
    assert "genedge.runtime.select" in uses, sorted(uses)
    parity = {i.module for i in imports_of(REPO / "export" / "parity.py")}
    assert "genedge.runtime.select" in parity
    assert not any(_top(m) == "onnxruntime" for m in parity), "parity must not open ORT itself"
    for path in _files("export"):
        assert "def run_engine(" not in path.read_text(encoding="utf-8"), path


def test_shared_names_have_one_home():
    """Backend names, precisions, ORT providers and each kind's graph are defined once."""
    from genedge import manifest, precisions
    from genedge.bench import cases, options, suite
    from genedge.export import options as export_options
    from genedge.runtime import ort_backend, sampler, select

    assert options.backend_names is select.backend_names
    assert export_options.PRECISIONS is manifest.PRECISIONS
    assert export_options.RUN_PRECISIONS is manifest.RUN_PRECISIONS is precisions.RUN_PRECISIONS
    assert cases.PROVIDERS is suite.PROVIDERS is ort_backend.PROVIDERS
    assert cases.MAIN_GRAPH is manifest.MAIN_GRAPH
    assert sampler.IMAGE_GRAPHS.items() <= manifest.MAIN_GRAPH.items()
    for path in _files("bench"):
        text = path.read_text(encoding="utf-8")
        assert '"CPUExecutionProvider"]' not in text, f"{path}: use runtime.ort_backend.PROVIDERS"


def test_export_does_not_import_bench():
    def rule(path: Path, imp: Import) -> str | None:
        return (
            "export may use train and runtime, not bench" if _stage(imp.module) == "bench" else None
        )

    assert _violations("export", rule) == []


def _export_import_graph() -> dict[str, set[str]]:
    """``{module: export modules it imports}`` over ``export/``, lazy imports included."""
    return _import_graph("export")


def _import_graph(stage: str) -> dict[str, set[str]]:
    """``{module: modules of the same stage it imports}``, lazy imports included."""
    modules = {
        _package_of(p) if p.name == "__init__.py" else f"{_package_of(p)}.{p.stem}": p
        for p in _files(stage)
    }
    if stage == "genedge":  # the core's own files: the stage packages live in other folders
        modules = {m: p for m, p in modules.items() if _stage(m) == "core"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for imp in imports_of(path):
            parts = imp.module.split(".")
            target = next(
                (
                    ".".join(parts[:n])
                    for n in range(len(parts), 0, -1)
                    if ".".join(parts[:n]) in modules
                ),
                None,
            )
            if target and target not in (name, STAGES[stage]):
                graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    return next((c for n in sorted(graph) if (c := visit(n, []))), None)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_export_modules_import_each_other_without_cycles():
    """Stages and helpers never import the orchestrator back (lazy imports count too)."""
    graph = _export_import_graph()
    assert "genedge.export.context" in graph["genedge.export.trt_stage"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    for leaf in ("context", "gate", "precision", "reuse", "manifest_build", "trt_stage", "speed"):
        assert "genedge.export.bundle" not in graph[f"genedge.export.{leaf}"], leaf


def test_core_modules_import_each_other_without_cycles():
    """The manifest stands on path confinement and hashing, which stand on nothing of the
    manifest; atomic writes stand on file marks, not on the output contract that uses them."""
    graph = _import_graph("genedge")
    assert "genedge.bundle_files" in graph["genedge.onnx_guard"]
    assert "genedge.onnx_guard" in graph["genedge.manifest"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    for bottom in ("bundle_files", "record_fields", "file_marks", "errors", "readback"):
        assert "genedge.manifest" not in graph[f"genedge.{bottom}"], bottom
        assert "genedge.outputs" not in graph[f"genedge.{bottom}"], bottom


PROBE = """
import glob, json, os, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import genedge, genedge.manifest, genedge.cli, genedge.atomic, genedge.errors, genedge.onnx_guard
import genedge.runtime
mods = sorted("genedge.runtime." + os.path.splitext(os.path.basename(p))[0]
              for p in glob.glob(os.path.join(sys.argv[1], "runtime", "*.py"))
              if not p.endswith("__init__.py"))
for m in mods:
    __import__(m)
genedge.runtime.Sampler, genedge.runtime.TextGenerator  # the lazy public entry points resolve
print(json.dumps({"imported": mods, "heavy": sorted(
    k for k in ("onnxruntime", "tensorrt", "cuda", "pycuda", "onnx", "cv2") if k in sys.modules)}))
"""


def test_runtime_and_core_import_without_torch_and_without_loading_backends():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "genedge.runtime.sampler" in result["imported"], result["imported"]
    assert result["heavy"] == [], f"imported at import time: {result['heavy']}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_parses(stage):
    assert all(isinstance(imports_of(p), list) for p in _files(stage))
