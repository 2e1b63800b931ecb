"""Holding an opened graph to the tensors its caller declared (names, dtypes, ranks, fixed dims)."""

from __future__ import annotations

from collections.abc import Sequence

from genedge.errors import CorruptArtifactError, printable
from genedge.manifest import Manifest

from .backend import Backend, TensorSpec


def check_io_spec(manifest: Manifest, graph: str, b: Backend) -> None:
    """Refuse (exit 2) a graph whose tensors disagree with the manifest's I/O spec for it (names,
    dtypes, ranks, fixed dims): C/C++ hosts size their buffers from that spec, not from the graph."""
    spec = manifest.graphs.get(graph)
    if spec is None:
        return  # a bundle without an I/O spec for this graph: nothing to hold it to
    for side, declared, actual in (
        ("inputs", spec.inputs, b.inputs),
        ("outputs", spec.outputs, b.outputs),
    ):
        problem = io_problem(side, declared, actual)
        if problem:
            raise CorruptArtifactError(
                f"Bundle '{manifest.root}', graph '{graph}' ({b.info.file}): {problem}.",
                hint="The manifest was edited or mixes exports; re-export the bundle.",
            )


def io_problem(
    side: str,
    declared: Sequence[TensorSpec],
    actual: Sequence[TensorSpec],
    where: str = "in the manifest",
) -> str | None:
    """What differs between ``declared`` and ``actual`` tensors, or None when they agree."""
    want = {t.name: t for t in declared}
    have = {t.name: t for t in actual}
    if set(want) != set(have):
        return f"{side} {printable(sorted(want))} {where}, {sorted(have)} in the graph"
    for name, t in have.items():
        shape = list(want[name].shape)
        fixed_ok = all(
            a == e
            for a, e in zip(t.shape, shape, strict=False)
            if isinstance(a, int) and isinstance(e, int)
        )
        if want[name].dtype != t.dtype or len(shape) != len(t.shape) or not fixed_ok:
            return (
                f"'{name}' is {want[name].dtype} {printable(shape)} {where}, "
                f"{t.dtype} {list(t.shape)} in the graph"
            )
    return None


def check_declared(
    b: Backend, inputs: Sequence[TensorSpec] | None, outputs: Sequence[TensorSpec] | None
) -> None:
    """Refuse (exit 2) a file whose tensors are not the ``inputs``/``outputs`` given."""
    for side, want, have in (("inputs", inputs, b.inputs), ("outputs", outputs, b.outputs)):
        if want is None:
            continue
        problem = io_problem(side, want, have, "expected")
        if problem:
            raise CorruptArtifactError(
                f"'{b.info.file}': {problem}.",
                hint="The file is not the graph its caller expects; re-export it.",
            )
