"""TensorRT names our code may use although one supported TensorRT lacks them.

Each entry says which names, which TensorRT major lacks them, the only functions allowed to
use them, and the guard: a condition in our source under which those uses run. The
conformance test accepts a missing name only when every use of it on that version sits in
one of the functions and is guarded, and ``proved_by`` names the api_decisions check that
shows the guard is false on that version (for ``req.path == LEGACY``: choose_build_path
never returns LEGACY on TensorRT 11). An entry whose names are all present, or no longer
used, fails too: the table only lists what is needed.

A use is guarded by ``G`` when it lies in the body of an ``if G:``; or after an
``if not G: return/raise`` in its function; or when every call of its function (the
outermost function for nested ones, the method for methods) is itself guarded by ``G``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class VersionGuard:
    names: tuple[str, ...]  # Use.name values, e.g. "tensorrt:BuilderFlag.INT8"
    missing_on: str  # the TensorRT major that lacks them
    functions: tuple[
        str, ...
    ]  # "export/stages/tensorrt.py:_legacy_precision" (nested defs included)
    guard: str  # the condition, as ast.unparse writes it
    proved_by: str  # api_decisions check showing the guard is false on ``missing_on``
    why: str


GUARDS = (
    VersionGuard(
        names=(
            "tensorrt:BuilderFlag.FP16",
            "tensorrt:BuilderFlag.INT8",
            "tensorrt:IBuilderConfig.set_calibration_profile",
            "tensorrt:IBuilderConfig.int8_calibrator",
            "tensorrt:IInt8EntropyCalibrator2",
        ),
        missing_on="11",
        functions=(
            "export/stages/tensorrt.py:_legacy_precision",
            "export/stages/tensorrt.py:make_entropy_calibrator",
        ),
        guard="req.path == LEGACY",
        proved_by="check_build_path_follows_the_version",
        why="TensorRT 11 builds strongly typed networks only: no precision flags, no calibrators",
    ),
)


def guard_for(name: str, major: str) -> VersionGuard | None:
    return next((g for g in GUARDS if name in g.names and g.missing_on == major), None)


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    out = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[prefix + child.name] = child
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _span(node: list[ast.stmt]) -> tuple[int, int]:
    return node[0].lineno, max(getattr(s, "end_lineno", s.lineno) or s.lineno for s in node)


class GuardChecker:
    """Answers "is the use at file:line in function F guarded by G?" over our sources."""

    def __init__(self, files: dict[str, str]) -> None:
        self.trees = {f: ast.parse(s) for f, s in files.items()}
        self.funcs = {f: _functions(t) for f, t in self.trees.items()}
        self._if_cache: dict[str, list[ast.If]] = {}

    def _ifs(self, f: str) -> list[ast.If]:
        if f not in self._if_cache:
            self._if_cache[f] = [n for n in ast.walk(self.trees[f]) if isinstance(n, ast.If)]
        return self._if_cache[f]

    def guarded(self, f: str, line: int, function: str, guard: str, _seen=None) -> bool:
        seen = _seen if _seen is not None else set()
        for node in self._ifs(f):
            lo, hi = _span(node.body)
            if ast.unparse(node.test) == guard and lo <= line <= hi:
                return True
        fn = self.funcs[f].get(function)
        if fn is not None:
            for node in self._ifs(f):
                early = node.body and isinstance(node.body[-1], (ast.Return, ast.Raise))
                inside = fn.lineno <= node.lineno < line
                if early and inside and ast.unparse(node.test) == f"not {guard}":
                    return True
        return self._callers_guarded(f, function, guard, seen)

    def _callable_name(self, f: str, function: str) -> str:
        """The name callers use: the outermost function, or the method of a class."""
        parts = function.split(".")
        for i in range(len(parts)):
            if ".".join(parts[: i + 1]) in self.funcs[f]:
                return parts[i]
        return parts[-1]

    def call_sites(self, name: str) -> list[tuple[str, int, str]]:
        """(file, line, enclosing function) of every call of ``name`` in our sources."""
        if not hasattr(self, "_calls"):
            self._calls = [c for f in self.trees for c in self._file_calls(f)]
        return [(f, line, owner) for f, line, called, owner in self._calls if called == name]

    def _file_calls(self, f: str) -> list[tuple[str, int, str | None, str]]:
        owners = sorted(
            ((fn.lineno, fn.end_lineno or fn.lineno, q) for q, fn in self.funcs[f].items()),
            key=lambda t: t[1] - t[0],
        )
        out = []
        for n in ast.walk(self.trees[f]):
            if isinstance(n, ast.Call):
                callee = n.func
                called = (
                    callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
                )
                owner = next((q for lo, hi, q in owners if lo <= n.lineno <= hi), "")
                out.append((f, n.lineno, called, owner))
        return out

    def _callers_guarded(self, f: str, function: str, guard: str, seen: set) -> bool:
        if not function:
            return False
        name = self._callable_name(f, function)
        if name in seen:
            return True  # recursion: decided by the other callers
        seen.add(name)
        sites = self.call_sites(name)
        return bool(sites) and all(
            self.guarded(sf, line, owner, guard, seen) for sf, line, owner in sites
        )
