"""Run in a subprocess whose ``sys.path`` holds one TensorRT and one cuda-python binding wheel
(unpacked) and whose ``LD_LIBRARY_PATH`` holds stand-in libnvinfer / libnvonnxparser /
libnvinfer_plugin: check every use ``api_uses`` finds against the real bindings, run our
decision code against them (``api_decisions``), and print one JSON report.

    python api_probe.py REPO_ROOT [--source FILE=PATH ...] [--only]

``--source`` replaces one walked file by another path (the tests inject bogus names this
way); ``--only`` walks those files alone.
Names and signatures only: nothing here can show that TensorRT or CUDA behave as we expect.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_uses import Type, Use, Walker, source_files  # noqa: E402

_SIG = re.compile(r"^(?:\d+\.\s+)?([A-Za-z_]\w*)\((.*)\)\s*->\s*(.+?)\s*$")
_CUDA_RETURN = re.compile(r"^\w+ : :py:obj:`~\.(\w+)`")


def modules() -> dict[str, Any]:
    trt = importlib.import_module("tensorrt")
    from cuda.bindings import runtime as cudart

    return {"tensorrt": trt, "cudart": cudart}


def _split_top(text: str) -> list[str]:
    """Split a parameter list at commas outside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(<{":
            depth += 1
        elif ch in "])>}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def pybind_overloads(obj: Any) -> list[tuple[inspect.Signature, str]]:
    """(signature, return annotation) of each overload in a pybind11 docstring."""
    name = getattr(obj, "__name__", "")
    out = []
    for line in (getattr(obj, "__doc__", None) or "").splitlines():
        m = _SIG.match(line.strip())
        if not m or m.group(1) != name:
            continue
        params = []
        for p in _split_top(m.group(2)):
            pname = re.split(r"[:=]", p, maxsplit=1)[0].strip()
            if pname.startswith("*"):
                kind = (
                    inspect.Parameter.VAR_KEYWORD
                    if pname.startswith("**")
                    else inspect.Parameter.VAR_POSITIONAL
                )
                params.append(inspect.Parameter(pname.lstrip("*"), kind))
                continue
            default = None if " = " in p or p.endswith("=None") else inspect.Parameter.empty
            params.append(
                inspect.Parameter(pname, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
            )
        try:
            out.append((inspect.Signature(params), m.group(3)))
        except ValueError:  # a default before a non-default: not a signature we can model
            continue
    return out


def signatures(obj: Any) -> list[inspect.Signature]:
    """Every signature the bindings document for ``obj`` (a class: its ``__init__``)."""
    target = obj.__init__ if isinstance(obj, type) else obj
    sigs = [s for s, _ in pybind_overloads(target)]
    if sigs:
        return sigs
    try:
        return [inspect.signature(target)]
    except (TypeError, ValueError):
        return []


def _drop_first(sig: inspect.Signature) -> inspect.Signature:
    params = list(sig.parameters.values())
    return sig.replace(parameters=params[1:]) if params else sig


class LiveResolver:
    """Answers ``api_uses.Resolver`` questions from the imported bindings."""

    def __init__(self, mods: dict[str, Any]) -> None:
        self.mods = mods

    def obj(self, t: Type) -> Any:
        o = self.mods[t.root]
        for p in t.path:
            o = getattr(o, p)
        return o

    def member(self, owner: Type, name: str) -> Type | None:
        try:
            o = self.obj(owner)
            attr = inspect.getattr_static(o, name)
        except AttributeError:
            return None
        if owner.instance and not callable(attr) and not isinstance(attr, staticmethod):
            return None  # a property's value: its type is not documented
        return Type(owner.root, (*owner.path, name), instance=owner.instance)

    def returns(self, callee: Type) -> Type | None:
        try:
            o = self.obj(callee)
        except AttributeError:
            return None
        if isinstance(o, type):
            return Type(callee.root, callee.path, instance=True)
        if callee.root == "cudart":
            return self._cuda_result(o)
        rets = {r for _, r in pybind_overloads(o)}
        if len(rets) != 1:
            return None
        path = tuple(rets.pop().rsplit("tensorrt.", 1)[-1].split("."))
        try:
            cls = self.obj(Type(callee.root, path))
        except AttributeError:
            return None
        return Type(callee.root, path, instance=True) if isinstance(cls, type) else None

    def _cuda_result(self, fn: Any) -> Type | None:
        """``(cudaError_t, values...)`` from the docstring's Returns section."""
        doc = getattr(fn, "__doc__", None) or ""
        if "Returns\n-------\ncudaError_t" not in doc:
            return None
        section = doc.split("Returns\n-------\n", 1)[1].split("\nSee Also", 1)[0]
        values: list[Type | None] = []
        for line in section.splitlines()[1:]:  # the first is cudaError_t
            if not line.strip() or line.startswith(" "):
                continue
            m = _CUDA_RETURN.match(line)
            cls = getattr(self.mods["cudart"], m.group(1), None) if m else None
            values.append(Type("cudart", (m.group(1),), True) if isinstance(cls, type) else None)
        return Type("cudart", ("<result>",), values=tuple(values))


def check_use(res: LiveResolver, use: Use) -> str | None:
    """None when ``use`` fits the bindings, else what is wrong."""
    try:
        owner = res.obj(use.owner)
    except AttributeError as e:
        return f"owner missing: {e}"
    if not hasattr(owner, use.member):
        return f"{use.owner.name} has no attribute {use.member!r}"
    attr = inspect.getattr_static(owner, use.member)
    if use.kind == "set" and use.owner.instance:
        if isinstance(attr, property) and attr.fset is None:
            return f"{use.name} is read-only"
        if not isinstance(attr, property) and not inspect.isdatadescriptor(attr):
            return f"{use.name} is not a property (assigning it only sets a Python attribute)"
    if use.kind == "call" and not use.starred:
        return _check_call(getattr(owner, use.member), use)
    if use.kind == "override":
        sigs = [_drop_first(s) for s in signatures(getattr(owner, use.member))]
        if sigs and not any(len(s.parameters) == use.n_args for s in sigs):
            shown = " | ".join(str(s) for s in sigs)
            return f"{use.name} takes {shown}; our override takes {use.n_args} argument(s)"
    return None


def _check_call(fn: Any, use: Use) -> str | None:
    sigs = signatures(fn)
    if not sigs:
        return None  # nothing documented to check against
    bound = use.owner.instance or isinstance(fn, type)  # self is implicit
    sigs = [_drop_first(s) if bound and _has_self(s, fn) else s for s in sigs]
    args, kwargs = [None] * use.n_args, dict.fromkeys(use.keywords)
    for s in sigs:
        try:
            s.bind(*args, **kwargs)
            return None
        except TypeError:
            continue
    shown = " | ".join(str(s) for s in sigs)
    call = ", ".join(["_"] * use.n_args + [f"{k}=_" for k in use.keywords])
    return f"{use.name}({call}) binds to none of: {shown}"


def _has_self(sig: inspect.Signature, fn: Any) -> bool:
    first = next(iter(sig.parameters), None)
    return first == "self" or (isinstance(fn, type) and first is not None)


def report(root: Path, replace: dict[str, Path], only: bool = False) -> dict[str, Any]:
    mods = modules()
    files = {} if only else source_files(root)
    for name, path in replace.items():
        files[name] = path.read_text()
    res = LiveResolver(mods)
    walker = Walker(files, res)
    uses = walker.uses()
    from api_decisions import run_all

    return {
        "tensorrt_version": mods["tensorrt"].__version__,
        "cuda_bindings_version": importlib.import_module("cuda.bindings").__version__,
        "uses": [
            dict(
                dataclasses.asdict(u),
                owner=u.owner.name,
                owner_instance=u.owner.instance,
                name=u.name,
                where=u.where,
                problem=check_use(res, u),
            )
            for u in uses
        ],
        "receivers": {f: sorted(v) for f, v in walker.checked_receivers().items()},
        "decisions": run_all(mods) if not replace else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--source", action="append", default=[], help="FILE=PATH")
    ap.add_argument("--only", action="store_true", help="walk the --source files alone")
    a = ap.parse_args()
    replace = {k: Path(v) for k, v in (s.split("=", 1) for s in a.source)}
    try:
        out = report(a.root, replace, a.only)
    except BaseException:
        out = {"fatal": traceback.format_exc()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
