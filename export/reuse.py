"""Reusing the bundle already at ``--out``: an unchanged source with unchanged options keeps
its artifacts instead of rebuilding them.

The previous bundle is read once, as typed records (``genedge.manifest.Manifest``), and only
when it is a valid genedge bundle whose every file matches its hash. A stage's artifacts are
reused when the source's sha256 and that stage's artifact key (``ExportOptions.artifact_key``)
are the ones recorded; TensorRT engines are always rebuilt (the GPU may differ).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from genedge.errors import GenedgeError
from genedge.export.context import BuildContext
from genedge.export.options import ExportOptions
from genedge.manifest import MANIFEST_NAME, Artifact, Manifest, read_manifest


def read_previous(out: Path) -> Manifest | None:
    """The bundle at ``out``, if it is a valid genedge bundle with intact files; else None."""
    if not (out / MANIFEST_NAME).is_file():
        return None
    try:
        m = read_manifest(out)
        for a in m.artifacts:
            m.path_of(a)  # sha256 of every file
    except GenedgeError:
        return None
    return m


def is_current(prev: Manifest | None, opts: ExportOptions, source_sha: str) -> bool:
    """True when the bundle already holds exactly what ``opts`` asks for, from this source."""
    if opts.force or opts.trt or not prev or prev.source.get("sha256") != source_sha:
        return False
    wanted = {s: opts.artifact_key(s) for s in opts.precisions}
    return prev.source.get("artifact_keys") == wanted


def reusable(ctx: BuildContext, stage: str) -> list[Artifact] | None:
    """Records of ``stage``'s artifacts in the previous bundle when source and options are unchanged."""
    prev, key = ctx.previous, ctx.opts.artifact_key(stage)
    ctx.keys[stage] = key
    if stage == "trt" or ctx.opts.force or not prev:  # engines are rebuilt: the GPU may differ
        return None
    if (
        prev.source.get("sha256") != ctx.source["sha256"]
        or (prev.source.get("artifact_keys") or {}).get(stage) != key
    ):
        return None
    records = [a for a in prev.artifacts if stage_of(a) == stage]
    return records or None


def stage_of(a: Artifact) -> str:
    """The stage that wrote ``a``: ``trt`` for engines and caches, else its precision."""
    return "trt" if a.format in ("engine", "cache") else a.precision or "fp32"


def copy_previous(ctx: BuildContext, records: list[Artifact], stage: str) -> None:
    """Copy ``records``' files from the previous bundle into the new one and record them."""
    for rec in records:
        shutil.copyfile(ctx.opts.out / rec.file, ctx.tmp / rec.file)
        ctx.artifacts.append(rec.to_dict())
    ctx.log(
        f"reused {', '.join(r.file for r in records)} (checkpoint and {stage} options unchanged)"
    )


def dropped_note(ctx: BuildContext) -> str | None:
    """A line naming the previous bundle's artifacts that this export does not write again
    (fewer precisions asked, or no ``--trt``), with how to keep them; None when none."""
    prev = ctx.previous
    if prev is None:
        return None
    written = {a["file"] for a in ctx.artifacts}
    gone = [a for a in prev.artifacts if a.file not in written]
    if not gone:
        return None
    names = ", ".join(f"{a.file} ({stage_of(a)})" for a in gone)
    stages = sorted({stage_of(a) for a in gone} - {"trt"})
    keep = []
    if stages:
        wanted = ",".join(dict.fromkeys([*ctx.opts.precisions, *stages]))
        keep.append(f"--precision {wanted}")
    if any(stage_of(a) == "trt" for a in gone):
        keep.append("--trt")
    return f"removed {names}: not asked for this time (to keep: {' '.join(keep)})"
