"""The ``--trt`` stage of ``export_bundle``: engines, caches and their manifest records. GPU only, unverified here."""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.errors import IncompatibleEnvironmentError
from genedge.export.checks.parity import engine_runner, max_abs_error, parity_feed, tolerance_for
from genedge.export.context import (
    BuildContext,
    add_artifact,
    calibration_feeds,
    calibration_spec,
    fp32_runner,
    save_bundle_file,
)
from genedge.export.stages.calibration import image_feed
from genedge.export.stages.tensorrt import (
    LEGACY,
    EngineRequest,
    calibration_cache_key,
    choose_build_path,
    engine_file_name,
    engine_from_onnx,
    engine_record,
    require_tensorrt,
    reusable_calibration_cache,
    source_onnx_for,
)
from genedge.manifest import sha256_file
from genedge.metrics import psnr
from genedge.runtime import trt_backend
from genedge.runtime.cuda import probe_environment


def _previous_file(ctx: BuildContext, name: str) -> tuple[dict[str, Any] | None, bytes | None]:
    prev = ctx.previous
    rec = next((a for a in prev.artifacts if a.file == name), None) if prev else None
    path = ctx.opts.out / name
    if rec is None or not path.is_file() or sha256_file(path) != rec.sha256:
        return None, None
    return rec.to_dict(), path.read_bytes()


def build_environment():
    """This machine's TensorRT and GPU (the runtime's probe), or exit 3 saying what is missing."""
    require_tensorrt()  # names genedge[trt] when the package is missing
    env = probe_environment()
    if env is None:
        raise IncompatibleEnvironmentError(
            "--trt builds TensorRT engines on an NVIDIA GPU; tensorrt is installed but no GPU "
            "or CUDA driver was found.",
            hint="Run the export on the GPU machine that will sample, or drop --trt.",
        )
    return env


def build_engines(ctx: BuildContext) -> None:
    """One engine per requested precision from the bundle's ONNX, with parity vs ORT fp32."""
    env = build_environment()
    trt_version, device_name = env.tensorrt_version, env.device_name
    cc = tuple(int(p) for p in env.compute_capability.split("."))
    _, timing = _previous_file(ctx, "timing.cache")
    calib_rec, calib_bytes = _previous_file(ctx, "calibration.cache")
    spec, o, calib_key = ctx.main, ctx.opts, None
    for prec in (p for p in o.precisions if p not in ctx.skipped):  # no ONNX to build from
        path = choose_build_path(
            trt_version, requested=o.trt_path, precision=prec, dla_core=o.dla_core
        )
        src = source_onnx_for(prec, path)
        req = EngineRequest(
            ctx.tmp / src,
            prec,
            path,
            tuple(t.to_dict() for t in spec.inputs),
            o.profiles,
            o.workspace_mb,
            o.dla_core,
            o.version_compatible,
        )
        feeds, cache = None, None
        if path == LEGACY and prec == "int8":
            calib_key = calibration_cache_key(
                sha256_file(ctx.tmp / src), calibration_spec(ctx).record(), trt_version
            )
            cache = reusable_calibration_cache(calib_rec, calib_key, calib_bytes)
            ctx.log(
                "TensorRT calibration cache: "
                + ("reused" if cache else "stale or missing, recalibrating")
            )
            feeds = calibration_feeds(ctx, spec)
        ctx.log(f"building TensorRT {prec} engine ({path}) from {src}")
        build = engine_from_onnx(
            req, timing_cache=timing, calibration_feeds=feeds, calibration_cache=cache, log=ctx.log
        )
        timing, calib_bytes = build.timing_cache, build.calibration_cache or calib_bytes
        file = engine_file_name(prec, cc, trt_version)
        save_bundle_file(ctx.tmp, file, build.plan)
        record = engine_record(
            trt_version=trt_version,
            device_name=device_name,
            compute_capability=cc,
            profiles=o.profiles,
            version_compatible=o.version_compatible,
            dla_core=o.dla_core,
            built_from=src,
            path=path,
            gpu_fallback=o.dla_core is not None,
        )
        add_artifact(
            ctx,
            file,
            graph=spec.name,
            format="engine",
            precision=prec,
            verification=engine_parity(ctx, file, record, prec),
            engine=record,
        )
    save_bundle_file(ctx.tmp, "timing.cache", timing or b"")
    add_artifact(ctx, "timing.cache", graph=spec.name, format="cache")
    if calib_key and calib_bytes:
        save_bundle_file(ctx.tmp, "calibration.cache", calib_bytes)
        add_artifact(
            ctx,
            "calibration.cache",
            graph=spec.name,
            format="cache",
            precision="int8",
            calibration=dict(calibration_spec(ctx).record(), cache_key=calib_key),
        )


def engine_parity(
    ctx: BuildContext, file: str, record: dict[str, Any], precision: str
) -> dict[str, Any]:
    """Engine (on the runtime's ``TrtBackend``) vs ORT fp32 on the parity seeds (batch = first
    profile's OPT)."""
    spec, o = ctx.main, ctx.opts
    runner = engine_runner(
        ctx.tmp / file,
        record,
        spec,
        precision=precision,
        allow_version_compatible=o.version_compatible,
    )
    try:
        return _engine_parity(ctx, runner, precision)
    finally:
        runner.close()


def _engine_parity(ctx: BuildContext, runner: Any, precision: str) -> dict[str, Any]:
    spec, o = ctx.main, ctx.opts
    n, worst, psnrs = o.profiles[0][1], 0.0, []
    ref_runner = fp32_runner(ctx, spec)
    for seed in o.parity_seeds:
        feed = (
            image_feed(ctx.cfg, n, seed)
            if spec.name != "step"
            else parity_feed(spec, ctx.cfg, ctx.kind, seed, n)
        )
        ref, out = ref_runner.run(feed), runner.run(feed)
        worst = max(worst, max_abs_error(ref, out))
        if "image" in ref:
            psnrs.append(psnr(ref["image"], out["image"], layout=spec.outputs[0].layout or "NHWC"))
    rec: dict[str, Any] = {
        "max_abs_err_vs_fp32": worst,
        "seeds": list(o.parity_seeds),
        "backend": trt_backend.SPEC.name,
    }
    if psnrs:
        rec["psnr_vs_fp32"] = float(min(min(psnrs), 200.0))
    ok = (
        worst <= tolerance_for(spec)
        if precision == "fp32"
        else rec.get("psnr_vs_fp32", 200.0) >= o.min_psnr
    )
    rec["verdict"] = "pass" if ok and np.isfinite(worst) else "fail"
    return rec
