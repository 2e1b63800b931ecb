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


def _base(node: ast.ImportFrom, package: str) -> str:
    """The absolute name of the module a ``from ... import`` statement reads."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    return ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))


def _resolve(node: ast.ImportFrom, package: str, per_name: bool = False) -> list[str]:
    """Absolute names ``node`` may import. ``per_name``: one candidate per imported name,
    ``base.name`` (the import graph keeps its longest prefix that is a module, so a function
    imported from a module counts as the module, a submodule as the submodule)."""
    base = _base(node, package)
    if per_name:
        return [base if a.name == "*" else f"{base}.{a.name}" for a in node.names]
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


def imports_in(source: str, package: str, rel: str, per_name: bool = False) -> list[Import]:
    """Every import in ``source`` (a module of ``package``), with absolute names
    (``per_name``: see ``_resolve``)."""
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
            found.extend(
                Import(rel, node.lineno, m, lazy) for m in _resolve(node, package, per_name)
            )
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
    parity = {i.module for i in imports_of(REPO / "export" / "checks" / "parity.py")}
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


def _module_name(path: Path) -> str:
    return _package_of(path) if path.name == "__init__.py" else f"{_package_of(path)}.{path.stem}"


def _module_of(name: str, modules) -> str | None:
    """The longest prefix of the dotted ``name`` that is one of ``modules`` (a function or
    class imported from a module counts as that module), or None."""
    parts = name.split(".")
    prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
    return next((p for p in prefixes if p in modules), None)


def import_graph(sources: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    """``{module: {module it imports: 'file:line' of the first such import}}`` over the modules
    of ``sources`` (``{module: (file, source text)}``; a file named ``__init__.py`` is its
    package). Every import counts, inside functions included; ``TYPE_CHECKING`` ones do not.
    """
    graph: dict[str, dict[str, str]] = {}
    for name, (rel, source) in sources.items():
        package = name if rel.endswith("__init__.py") else name.rpartition(".")[0]
        graph[name] = {}
        for imp in imports_in(source, package, rel, per_name=True):
            target = _module_of(imp.module, sources)
            if target is not None and target != name:
                graph[name].setdefault(target, f"{imp.file}:{imp.line}")
    return graph


def _project_graph() -> dict[str, dict[str, str]]:
    """The import graph of every module of every package (core and the four stages)."""
    sources = {
        _module_name(p): (str(p.relative_to(REPO)), p.read_text(encoding="utf-8"))
        for stage in STAGES
        for p in _files(stage)
    }
    return import_graph(sources)


def _import_graph(stage: str) -> dict[str, set[str]]:
    """``{module: modules of the same stage it imports}``, lazy imports included."""
    project = _project_graph()
    want = "core" if stage == "genedge" else stage
    mine = {m for m in project if _stage(m) == want}
    return {m: set(project[m]) & mine for m in mine}


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


def test_the_import_graph_resolves_names_to_modules():
    """``from . import f`` of a function counts as the package, of a module as the module;
    lazy and absolute imports count; ``TYPE_CHECKING`` imports do not."""
    sources = {
        "p": ("p/__init__.py", "from .a import helper\n"),
        "p.a": ("p/a.py", "from . import b\nfrom p import c\n"),
        "p.b": ("p/b.py", "from . import a as _, helper\n"),
        "p.c": ("p/c.py", "def f():\n    from .d import x\n    import p.a.thing\n"),
        "p.d": ("p/d.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.c\n"),
    }
    graph = import_graph(sources)
    assert graph["p"] == {"p.a": "p/__init__.py:1"}
    assert set(graph["p.a"]) == {"p.b", "p.c"}
    assert set(graph["p.b"]) == {"p.a", "p"}  # `helper` is no module: the package
    assert set(graph["p.c"]) == {"p.d", "p.a"}  # both inside a function
    assert graph["p.d"] == {}
    assert find_cycle({m: set(t) for m, t in graph.items()}) == ["p", "p.a", "p.b", "p"]


def test_no_import_cycles_in_any_package():
    """No module imports, directly or through others, a module that imports it: across core,
    train, export, runtime and bench, with imports inside functions counted (an import
    hidden in a function still makes the two modules one unit). A cycle is broken by moving
    the shared piece down into the module both depend on."""
    graph = _project_graph()
    assert len(graph) > 100, sorted(graph)  # every package's modules are in it
    cycle = find_cycle({m: set(t) for m, t in graph.items()})
    steps = zip(cycle or [], (cycle or [])[1:], strict=False)
    where = [f"{a} -> {b} ({graph[a][b]})" for a, b in steps]
    assert cycle is None, "import cycle:\n  " + "\n  ".join(where)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_export_modules_import_each_other_without_cycles():
    """Stages and helpers never import the orchestrator back (lazy imports count too)."""
    graph = _export_import_graph()
    assert "genedge.export.context" in graph["genedge.export.stages.trt_stage"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    for leaf in (
        "context",
        "checks.gate",
        "stages.precision",
        "reuse",
        "manifest_build",
        "stages.trt_stage",
        "stages.speed",
    ):
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


_NN = "its classes subclass torch's nn.Module, so importing it imports torch"

# (importing file, sibling module it imports inside a function): why it is not at the top
LAZY_SIBLINGS: dict[tuple[str, str], str] = {
    ("export/bundle.py", "genedge.export.routes.wrappers"): _NN,
    ("export/routes/onnx_export.py", "genedge.export.routes.wrappers"): _NN,
    ("export/routes/source_onnx.py", "genedge.export.routes.wrappers"): _NN,
    ("export/routes/byo.py", "genedge.export.routes.wrappers"): _NN + " (byo subclasses "
    "GraphWrapper in a factory, on first use)",
    ("export/stages/text_tensorrt.py", "genedge.export.routes.text_wrappers"): _NN,
    ("export/routes/text_source.py", "genedge.export.routes.text_wrappers"): _NN,
    ("train/commands.py", "genedge.train.trainer"): _NN + " (the models); option errors are "
    "answered before that",
    ("train/commands.py", "genedge.train.eval"): _NN + " (RandomConvFeatures); option errors "
    "are answered before that",
    ("train/datasets.py", "genedge.train.features"): _NN + " (RandomConvFeatures); the "
    "dataset table is read without torch",
}


def lazy_sibling_imports() -> dict[tuple[str, str], str]:
    """``{(file, sibling module): 'file:line'}`` for each import, inside a function, of a
    module of the importer's own package (a stage, or the core outside ``CORE_EXEMPT``)."""
    modules = set(_project_graph())
    found: dict[tuple[str, str], str] = {}
    for stage in STAGES:
        for path in _files(stage):
            if stage == "genedge" and path.name in CORE_EXEMPT:
                continue
            mine = _stage(STAGES[stage])
            for imp in imports_of(path):
                target = _module_of(imp.module, modules)
                if imp.lazy and target is not None and _stage(target) == mine:
                    found.setdefault((imp.file, target), f"{imp.file}:{imp.line}")
    return found


def _holds_to(found: dict, allowed: dict, name: str, fix: str) -> None:
    """Every function-level import ``found`` ((file, module) -> where) is in ``allowed`` with a
    reason, and ``allowed`` lists none that is gone."""
    hidden = sorted(where for key, where in found.items() if key not in allowed)
    assert hidden == [], f"{fix} (or list in {name}):\n  " + "\n  ".join(hidden)
    stale = sorted(f"{f} -> {m}" for f, m in allowed if (f, m) not in found)
    assert stale == [], f"{name} lists imports that are gone:\n  " + "\n  ".join(stale)
    assert all(why.strip() for why in allowed.values())


def test_sibling_modules_are_imported_at_the_top():
    """A module of the same package is imported at the top of the file, where a reader sees
    what the file stands on; only heavy third-party packages load lazily (``genedge.lazy``).
    A sibling stays inside a function only where importing it would import torch (its classes
    subclass ``nn.Module``), each such import listed in ``LAZY_SIBLINGS`` with its reason."""
    _holds_to(lazy_sibling_imports(), LAZY_SIBLINGS, "LAZY_SIBLINGS", "import at the top")


# third-party packages a file declares at its top (``name = lazy_import("name")``) rather than
# importing inside a function; genedge.lazy imports them at first use
DECLARED_HEAVY = (*HEAVY, "onnxslim", "onnxconverter_common", "transformers")
_PROBE_INSTALLED = "probes whether the package is installed (try/except ImportError)"

# (importing file, heavy package it imports inside a function): why it is not declared at the top
LAZY_HEAVY: dict[tuple[str, str], str] = {
    ("runtime/cuda.py", "cuda"): _PROBE_INSTALLED + ": cuda.bindings (cuda-python >= 12.6), "
    "else cuda.cudart",
    ("bench/openvino_baseline.py", "openvino"): _PROBE_INSTALLED + "; a missing one skips the case",
    ("bench/baselines.py", "torch"): _PROBE_INSTALLED + " together with genedge.train; a missing "
    "one skips the case",
    ("bench/results/make_llama_folder.py", "torch"): "a script: imports after its arguments parse",
    (
        "bench/results/make_llama_folder.py",
        "transformers",
    ): "a script: imports after its arguments parse",
    ("bench/text_targets.py", "torch"): "install probe; a baseline whose import time is measured",
    (
        "bench/text_targets.py",
        "transformers",
    ): "install probe; a baseline whose import time is measured",
    ("runtime/ort_backend.py", "onnxruntime"): "install probe: whether a provider is available",
}


def lazy_heavy_imports() -> dict[tuple[str, str], str]:
    """``{(file, heavy package): 'file:line'}`` for each import of a ``DECLARED_HEAVY`` package
    (or a module of one) inside a function, in every package."""
    found: dict[tuple[str, str], str] = {}
    for stage in STAGES:
        for path in _files(stage):
            for imp in imports_of(path):
                if imp.lazy and _top(imp.module) in DECLARED_HEAVY:
                    found.setdefault((imp.file, _top(imp.module)), f"{imp.file}:{imp.line}")
    return found


def test_heavy_packages_are_declared_at_the_top():
    """torch, onnx, onnxruntime, TensorRT and the rest are declared at the top of the file that
    uses them (``torch = lazy_import("torch")``), where a reader sees what the file stands on;
    ``genedge.lazy`` imports them at first use and names the extra when one is missing. An
    import stays inside a function only where a stand-in cannot serve (a probe for whether the
    package is installed), each listed in ``LAZY_HEAVY`` with its reason."""
    _holds_to(lazy_heavy_imports(), LAZY_HEAVY, "LAZY_HEAVY", "declare at the top (lazy_import)")


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
