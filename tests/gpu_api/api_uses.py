"""Every TensorRT and cuda-python name our source uses, found by walking its AST.

Nothing here imports tensorrt or cuda-python: the walk takes a ``Resolver`` that answers
questions about the real bindings (does ``IBuilderConfig`` have ``set_timing_cache``, what
does ``Builder.create_network`` return, do these arguments bind to its signature). The
conformance tests run it in a subprocess that has the real binding wheels on ``sys.path``.

Roots, found in the source rather than listed here:

* ``import tensorrt as X``, ``from cuda.bindings import runtime as X``, ``import cuda.cudart as X``;
* ``require("tensorrt", ...)`` / ``require("cuda.cudart", ...)`` (genedge.errors' lazy import);
* a call of one of our functions that returns one of the above (``require_tensorrt()``,
  ``cuda_runtime()``), found by following ``return`` statements.

Types then flow through assignments (``a, b = x, y`` pairwise, ``with X as y``), flow-insensitively and keyed by the bound name
(``config``, ``self._engine``) within a file, so a helper's parameter named like the value
passed to it (``_add_profiles(builder, config, req)``) has that value's type:

* attribute of a module or class -> that object (a class, an enum, a function);
* calling a class -> an instance; calling a TensorRT method -> its documented return type
  (pybind11 puts ``name(self: ..., arg: T = d) -> R`` lines in every ``__doc__``);
* a cuda-python call -> its ``(cudaError_t, value...)`` tuple, from the docstring's
  ``Returns`` section; tuple unpacking, or passing it through a one-argument helper of
  ours (the ``cuda_call(...)`` unwrap idiom), gives the values.

Only files that name a root, or call a function found to return a binding type, are walked.
A name whose type cannot be inferred is not checked: ``checked_receivers`` in the report
shows what was, and the tests assert the main TensorRT objects are among them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# import name -> root; "cudart" is cuda-python's runtime module under either of its names
MODULE_ROOTS = {
    "tensorrt": "tensorrt",
    "cuda.cudart": "cudart",
    "cuda.bindings.runtime": "cudart",
}


@dataclass(frozen=True)
class Type:
    """What a name holds: the object at ``path`` under ``root`` (a module, class, function,
    enum) or, with ``instance``, an instance of that class. ``values`` is set for a cuda call's
    result tuple instead (the types after the error code)."""

    root: str
    path: tuple[str, ...] = ()
    instance: bool = False
    values: tuple[Type | None, ...] | None = None

    @property
    def name(self) -> str:
        return ":".join([self.root, ".".join(self.path)]) if self.path else self.root


@dataclass(frozen=True)
class Use:
    """One use of a binding name: ``owner.member`` at ``file:line`` inside ``function``.

    ``kind`` is ``get`` (read), ``set`` (assigned: must be a writable property), ``call``
    (also checked against the signature with ``n_args`` positional and ``keywords``), or
    ``override`` (a method our subclass defines that TensorRT calls by name).
    """

    file: str
    line: int
    function: str  # enclosing function ("" at module level), "Class.method" inside classes
    owner: Type
    member: str
    kind: str = "get"
    n_args: int = 0
    keywords: tuple[str, ...] = ()
    starred: bool = False  # *args / **kwargs in the call: only the name is checked

    @property
    def name(self) -> str:
        """``tensorrt:IBuilderConfig.set_timing_cache``."""
        return f"{self.owner.name}{'.' if self.owner.path else ':'}{self.member}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" + (f" ({self.function})" if self.function else "")


class Resolver(Protocol):
    """The bindings' side of the walk (see api_probe.LiveResolver)."""

    def member(self, owner: Type, name: str) -> Type | None:
        """The type of ``owner.name`` when it exists and is a class, module or callable."""

    def returns(self, callee: Type) -> Type | None:
        """The type a call of ``callee`` returns, when documented."""


class NullResolver:
    """No bindings: only module roots and our own helpers get types."""

    def member(self, owner: Type, name: str) -> Type | None:
        return Type(owner.root, (*owner.path, name))

    def returns(self, callee: Type) -> Type | None:
        return None


@dataclass
class _Scope:
    types: dict[str, set[Type]] = field(default_factory=dict)

    def add(self, key: str, t: Type | None) -> bool:
        if t is None:
            return False
        got = self.types.setdefault(key, set())
        if t in got:
            return False
        got.add(t)
        return True


def _key(node: ast.AST) -> str | None:
    """``x`` or ``self.x`` (the names types are tracked by)."""
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    ):
        return f"self.{node.attr}"
    return None


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """The nodes of ``fn``'s body, not those of the functions and classes defined in it
    (those nodes themselves are included, their bodies are not; a class body is)."""
    out, todo = [], list(ast.iter_child_nodes(fn))
    while todo:
        n = todo.pop()
        out.append(n)
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(n))
    return out


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function with its qualified name (``Class.method``, ``outer.inner``)."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out.append((name, child))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


class Walker:
    """Walks files, infers binding types, and lists every ``Use``."""

    def __init__(self, files: dict[str, str], resolver: Resolver | None = None) -> None:
        self.sources = files  # display path -> source text
        self.resolver = resolver or NullResolver()
        self.returns: dict[str, set[Type]] = {}  # our function name -> types it returns
        self.trees: dict[str, ast.Module] = {}  # the files walked (see infer)
        self.scopes: dict[str, _Scope] = {}
        self.nodes: dict[str, list[ast.AST]] = {}
        self.funcs: dict[str, list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]] = {}
        self.own: dict[int, list[ast.AST]] = {}  # id(function) -> its own nodes
        self.rets: dict[str, list[tuple[str, ast.AST]]] = {}  # file -> [(function, returned)]
        self.helpers: set[str] = set()  # one-argument functions (the unwrap idiom)
        self._inferred = False

    def _activate(self, f: str) -> None:
        tree = self.trees[f] = ast.parse(self.sources[f], filename=f)
        self.scopes[f] = _Scope()
        self.nodes[f] = list(ast.walk(tree))
        self.funcs[f] = _functions(tree)
        for _, fn in self.funcs[f]:
            self.own[id(fn)] = _own_nodes(fn)
        self.rets[f] = [
            (name.rsplit(".", 1)[-1], n.value)
            for name, fn in self.funcs[f]
            for n in self.own[id(fn)]
            if isinstance(n, ast.Return) and n.value is not None
        ]
        self.helpers |= {
            name.rsplit(".", 1)[-1] for name, fn in self.funcs[f] if len(fn.args.args) == 1
        }

    # ------------------------------------------------------------------ inference
    def infer(self) -> None:
        """Type every name, to a fixed point. Only files that can hold a binding type are
        walked: those naming a root module, then those calling one of our functions found
        to return a binding type (a file with neither can bind no such name)."""
        if self._inferred:
            return
        self._inferred = True
        wanted = ("tensorrt", "cuda")
        while True:
            new = [
                f
                for f, src in self.sources.items()
                if f not in self.trees
                and (
                    any(w in src for w in wanted) or any(f"{name}(" in src for name in self.returns)
                )
            ]
            if not new:
                return
            for f in new:
                self._activate(f)
            for _ in range(12):  # each pass may type a few more names
                changed = False
                for f, tree in self.trees.items():
                    changed |= self._pass(f, tree)
                if not changed:
                    break

    def _pass(self, f: str, tree: ast.Module) -> bool:
        scope, changed = self.scopes[f], False
        for node in self.nodes[f]:
            if isinstance(node, ast.Import):
                for a in node.names:
                    root = MODULE_ROOTS.get(a.name)
                    if root and a.asname:
                        changed |= scope.add(a.asname, Type(root))
                    elif a.name == "tensorrt":
                        changed |= scope.add("tensorrt", Type(root))
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    root = MODULE_ROOTS.get(f"{node.module}.{a.name}")
                    if root:
                        changed |= scope.add(a.asname or a.name, Type(root))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target, value in self._pairs(targets, node.value):
                    for t in self.types_of(f, value):
                        changed |= self._bind(scope, target, t)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                for t in self.types_of(f, node.context_expr):  # TensorRT's __enter__: self
                    changed |= self._bind(scope, node.optional_vars, t)
        for name, value in self.rets[f]:
            for t in self.types_of(f, value):
                got = self.returns.setdefault(name, set())
                if t not in got:
                    got.add(t)
                    changed = True
        return changed

    @staticmethod
    def _pairs(targets: list[ast.expr], value: ast.expr) -> list[tuple[ast.expr, ast.expr]]:
        """(target, value) pairs: ``a, b = x, y`` pairs element by element."""
        out = []
        for target in targets:
            same = isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            if same and len(target.elts) == len(value.elts):
                out += list(zip(target.elts, value.elts, strict=True))
            else:
                out.append((target, value))
        return out

    def _bind(self, scope: _Scope, target: ast.AST, t: Type) -> bool:
        if isinstance(target, (ast.Tuple, ast.List)):
            if t.values is None:
                return False
            full = (None, *t.values)  # (err, values...)
            if len(target.elts) != len(full):
                return False
            bound = [  # a list, not any(): every element is bound
                self._bind(scope, elt, v)
                for elt, v in zip(target.elts, full, strict=True)
                if v is not None
            ]
            return any(bound)
        key = _key(target)
        return scope.add(key, t) if key else False

    def types_of(self, f: str, node: ast.AST) -> set[Type]:
        """Every type ``node`` may have (empty when unknown)."""
        scope = self.scopes[f]
        if isinstance(node, ast.Name) or _key(node):
            return set(scope.types.get(_key(node) or "", ()))
        if isinstance(node, ast.Attribute):
            out = set()
            for owner in self.types_of(f, node.value):
                t = self.resolver.member(owner, node.attr) if owner.values is None else None
                if t is not None:
                    out.add(t)
            return out
        if isinstance(node, ast.Call):
            return self._call_types(f, node)
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.types_of(f, v) for v in node.values))
        return set()

    def _call_types(self, f: str, node: ast.Call) -> set[Type]:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id == "require" and node.args and isinstance(node.args[0], ast.Constant):
                root = MODULE_ROOTS.get(str(node.args[0].value))
                return {Type(root)} if root else set()
            if func.id in self.returns:
                return set(self.returns[func.id])
            if func.id in self.helpers and len(node.args) == 1:  # the (err, value) unwrap idiom
                out = set()
                for t in self.types_of(f, node.args[0]):
                    if t.values is not None and len(t.values) == 1 and t.values[0] is not None:
                        out.add(t.values[0])
                return out
        out = set()
        for callee in self.types_of(f, func):
            t = self.resolver.returns(callee)
            if t is not None:
                out.add(t)
        return out

    # ------------------------------------------------------------------ uses
    def uses(self) -> list[Use]:
        self.infer()
        found: list[Use] = []
        for f, tree in self.trees.items():
            found += self._file_uses(f, tree)
        return sorted(set(found), key=lambda u: (u.file, u.line, u.name, u.kind))

    def _file_uses(self, f: str, tree: ast.Module) -> list[Use]:
        where = {}  # node id -> enclosing function name
        for name, fn in self.funcs[f]:
            for n in self.own[id(fn)]:
                where[id(n)] = name
        nodes = self.nodes[f]
        calls = {id(n.func): n for n in nodes if isinstance(n, ast.Call)}
        stores = {
            id(t)
            for n in nodes
            if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        }
        out = []
        for node in nodes:
            if isinstance(node, ast.Attribute):
                for owner in self.types_of(f, node.value):
                    if owner.values is not None:
                        continue
                    kind, n_args, kws, starred = "get", 0, (), False
                    call = calls.get(id(node))
                    if call is not None:
                        kind, n_args = "call", len(call.args)
                        kws = tuple(k.arg for k in call.keywords if k.arg)
                        starred = any(isinstance(a, ast.Starred) for a in call.args) or any(
                            k.arg is None for k in call.keywords
                        )
                    elif id(node) in stores:
                        kind = "set"
                    out.append(
                        Use(
                            f,
                            node.lineno,
                            where.get(id(node), ""),
                            owner,
                            node.attr,
                            kind,
                            n_args,
                            kws,
                            starred,
                        )
                    )
            elif isinstance(node, ast.ClassDef):
                out += self._overrides(f, node, where.get(id(node), ""))
        return out

    def _overrides(self, f: str, cls: ast.ClassDef, function: str) -> list[Use]:
        """Methods of our subclasses of a binding class: TensorRT calls them by name."""
        out = []
        for base in cls.bases:
            for owner in self.types_of(f, base):
                for item in cls.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                        out.append(
                            Use(
                                f,
                                item.lineno,
                                f"{function}.{cls.name}".lstrip("."),
                                owner,
                                item.name,
                                "override",
                                len(item.args.args) - 1,  # without self
                            )
                        )
        return out

    def checked_receivers(self) -> dict[str, set[str]]:
        """Per file: the bound names (``config``, ``self._engine``) that have a binding type."""
        self.infer()
        return {
            f: {k for k, ts in s.types.items() if any(t.values is None for t in ts)}
            for f, s in self.scopes.items()
        }


def source_files(
    root: Path, packages: Iterable[str] = ("export", "runtime", "bench")
) -> dict[str, str]:
    """``{"export/stages/tensorrt.py": text, ...}`` for every Python file of our stage packages."""
    return {
        str(p.relative_to(root)): p.read_text()
        for pkg in packages
        for p in sorted((root / pkg).rglob("*.py"))
    }
