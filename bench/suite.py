"""``run_bench(options) -> BenchReport``: build the cases for a bundle, measure them, report.

Image bundles (gan, vae): runtime backend x precision x batch, interleaved with the
baselines (bare ORT on the same file, PyTorch eager and ``torch.compile`` from the
source checkpoint), then cold starts in fresh processes, trtexec, and the real-time
mode. ``ar`` bundles: the text benchmark (``genedge.bench.text``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genedge.cpu_load import RoundLoad, load_average, usable_cpus
from genedge.errors import BadInputError, printable
from genedge.manifest import MAIN_GRAPH, Manifest, main_graph, read_manifest
from genedge.precisions import ARTIFACT_PRECISIONS, PRECISIONS
from genedge.runtime import registry
from genedge.runtime.ort_backend import PROVIDERS

from .baselines import TorchTarget, check_module_source, find_checkpoint
from .cases import (
    Inputs,
    OrtTarget,
    RuntimeTarget,
    Target,
    make_inputs,
    onnx_path,
)
from .coldstart import measure_cold_start
from .env import environment
from .flops import flops_by_batch
from .machine import matmul_probe
from .memory import gpu_memory, peak_rss_bytes
from .openvino_baseline import OpenVinoTarget
from .options import DEFAULT_SECONDS, BenchOptions, validate_options
from .progress import progress_bar
from .quality import quality_rows
from .ratios import Ratio, compute_ratios, rounds_disagree
from .realtime import realtime_bench
from .report import BenchReport
from .runner import SETTLE_S, CaseResult, rounds_of, run_cases
from .text import text_bench
from .timer import Budget
from .trtexec import run_trtexec


def bundle_precisions(manifest: Manifest) -> tuple[str, ...]:
    """Precisions the bundle holds for its main graph, in fp32, fp16, int8 (int4) order."""
    graph = main_graph(manifest)
    held = {
        a.precision
        for a in manifest.artifacts
        if a.graph == graph and a.format in ("onnx", "engine")
    }
    return tuple(p for p in ARTIFACT_PRECISIONS if p in held)


def resolved(opts: BenchOptions, manifest: Manifest) -> BenchOptions:
    """Fill the defaults that depend on the machine and the bundle (threads, precisions, budget)."""
    changes: dict[str, Any] = {}
    if opts.threads is None:
        changes["threads"] = usable_cpus()
    if opts.precisions is None:
        changes["precisions"] = bundle_precisions(manifest) or ("fp32",)
    if opts.iters is None and opts.seconds is None:
        changes["seconds"] = DEFAULT_SECONDS
    return dataclasses.replace(opts, **changes)


def runtime_targets(o: BenchOptions) -> list[RuntimeTarget]:
    """backend x precision; the native TensorRT backend also with CUDA graphs (GPU only)."""
    out = []
    for b in o.backends:
        for p in o.precisions or ():
            out.append(RuntimeTarget(o.bundle, b, p, o.threads))
            engine = b != registry.AUTO and registry.spec(b).artifact == "engine"
            if not engine and "ort" in o.baselines:  # Sampler.sample(n) beside bare ORT
                out.append(RuntimeTarget(o.bundle, b, p, o.threads, call="sample"))
            if engine:
                out.append(RuntimeTarget(o.bundle, b, p, o.threads, {"cuda_graphs": True}))
    return out


def ort_targets(o: BenchOptions, manifest: Manifest, notes: list[str]) -> list[OrtTarget]:
    """Bare ORT on each file the runtime's ORT backends run (auto is taken as ort-cpu here)."""
    out = []
    cpu = registry.reference().name
    backends = dict.fromkeys(cpu if b == "auto" else b for b in o.backends)
    for backend in (b for b in backends if b in PROVIDERS):
        for p in o.precisions or ():
            path = onnx_path(manifest, p)
            if path is None:
                notes.append(f"bare-ort {p}: the bundle has no {p} ONNX file")
                continue
            out.append(OrtTarget(path, backend, p, o.threads))
    return out


def openvino_targets(o: BenchOptions, manifest: Manifest, notes: list[str]) -> list[Target]:
    """Standalone OpenVINO on the file of each precision (bf16: the fp32 file, bf16 hint)."""
    out: list[Target] = []
    for p in o.precisions or ():
        path = onnx_path(manifest, "fp32" if p == "bf16" else p)
        if path is None:
            notes.append(f"openvino {p}: the bundle has no {p} ONNX file")
            continue
        out.append(OpenVinoTarget(path, p, o.threads))
    return out


def torch_targets(o: BenchOptions, manifest: Manifest, notes: list[str]) -> list[TorchTarget]:
    wanted = [b for b in ("torch", "torch-compile") if b in o.baselines]
    if not wanted:
        return []
    if manifest.kind == "ar":
        notes.append(
            "torch baselines: not measured for ar bundles (per-token step; see text section)"
        )
        return []
    uint8 = manifest.model.output_format == "uint8"
    source_type = manifest.source.get("type")
    if o.module or source_type in ("module", "onnx"):
        return _user_module_targets(o, manifest, notes, wanted, uint8)
    ckpt, why = find_checkpoint(manifest, o.checkpoint)
    if ckpt is None:
        notes.append(f"torch baselines skipped: {why}")
        return []
    notes.append(why)  # which file the baselines load, and how it was found
    return [
        TorchTarget(ckpt, compile=b == "torch-compile", threads=o.threads, uint8_nhwc=uint8)
        for b in wanted
    ]


def _user_module_targets(
    o: BenchOptions, manifest: Manifest, notes: list[str], wanted: list[str], uint8: bool
) -> list[TorchTarget]:
    """Torch baselines of a bundle exported from a user's module (``--module``/``--weights``)."""
    if manifest.source.get("type") == "onnx":
        if o.module:
            raise BadInputError(
                "--module was given, but the bundle comes from an ONNX file: there is no torch "
                "model to compare with.",
                hint="Drop --module.",
            )
        notes.append("torch baselines skipped: the bundle comes from an ONNX file (no torch model)")
        return []
    if not o.module:
        notes.append(
            "torch baselines skipped: the bundle comes from your module "
            f"{manifest.source.get('module')!r}; pass --module FILE.py:NAME --weights W "
            "(importing FILE.py runs its code)"
        )
        return []
    why = check_module_source(manifest, o.weights)
    if why:  # the baselines were asked for by name: measuring nothing would mislead
        raise BadInputError(
            f"--module {printable(o.module)}: {why}.",
            hint="Pass --weights with the file the bundle was exported from (its sha256 is in "
            "the manifest's source record), or drop --module.",
        )
    module = (o.module, o.weights, o.module_args)
    return [
        TorchTarget(
            Path(o.module.rpartition(":")[0]),
            compile=b == "torch-compile",
            threads=o.threads,
            uint8_nhwc=uint8,
            module=module,
            source=dict(manifest.source),
        )
        for b in wanted
    ]


def _check_runtime_ran(results: list[CaseResult], targets: list[RuntimeTarget]) -> None:
    if any(r.kind == "runtime" for r in results):
        return
    errors = [t.error for t in targets if t.error is not None]
    if errors:
        raise errors[0]
    raise BadInputError(
        "No runtime configuration could be measured.",
        hint="Check --backend/--precision against the bundle (see the notes above).",
    )


COLD_START_S = 1.5  # a fresh process: interpreter, imports, open, first result (about)
# a baseline's one-off cost per (baseline, batch) case on a 2-core CPU: imports, building,
# torch.compile's compile for each batch size (about; a busy machine takes longer)
BASELINE_SETUP_S = {"torch": 1.0, "torch-compile": 25.0, "ort": 0.2, "openvino": 1.0}


def expected_duration(
    o: BenchOptions,
    cases: int,
    configurations: int,
    setup: list[str] | None = None,
    load: tuple[float, int] | None = None,
) -> str:
    """What an image bench will take, said before it starts: ``cases`` timed (configuration,
    batch) cases, ``configurations`` runtime configurations for the cold starts, and the
    one-off setup of each baseline case (``setup``: their kinds, one per case). ``load``:
    (1-minute load average, usable CPUs) now; a busy machine stretches everything but the
    timed budget, and the line says by how much."""
    cold = o.cold_runs * configurations
    parts = [f"{cases} timed cases"]
    total = cold * COLD_START_S + (o.fps_seconds if o.fps is not None else 0.0)
    total += cases * o.rounds * SETTLE_S
    baseline_s = sum(BASELINE_SETUP_S.get(k, 1.0) for k in setup or [])
    total += baseline_s
    if o.seconds is not None:
        parts[0] += f" x {o.seconds:g} s"
        total += cases * o.seconds
    else:
        parts[0] += f" x {o.iters} calls"
    if cold:
        parts.append(f"{cold} cold start{'s' if cold != 1 else ''}")
    if baseline_s:
        parts.append(f"about {baseline_s:.0f} s setting up the baselines")
    if o.fps is not None:
        parts.append(f"a {o.fps_seconds:g} s real-time run")
    about = f": about {total:.0f} s" if o.seconds is not None else ""
    warm = f" and {o.warmup} warm-up calls per case" if o.warmup else ""
    line = f"bench: {', '.join(parts)}{about} (plus loading{warm})"
    if load is not None and load[0] > load[1] and o.seconds is not None:
        timed = cases * o.seconds
        stretched = timed + (total - timed) * load[0] / load[1]
        line += (
            f"; the machine is busy (load {load[0]:.1f} on {load[1]} CPUs): expect about "
            f"{stretched:.0f} s or more"
        )
    return line


def image_bench(
    o: BenchOptions,
    manifest: Manifest,
    notes: list[str],
    announce: Callable[[str], None] | None = None,
    progress: bool = False,
    load: RoundLoad | None = None,
) -> tuple[list[CaseResult], list[dict]]:
    """Interleaved steady state of every target, then cold starts. Returns (results, cold starts).

    ``announce`` receives one line saying how long the run will take, before it starts;
    ``progress`` draws a bar on stderr while it runs (only when stderr is a terminal).
    """
    runtime = runtime_targets(o)
    baselines: list[Target] = []
    if "ort" in o.baselines:
        baselines += ort_targets(o, manifest, notes)
    if "openvino" in o.baselines:
        baselines += openvino_targets(o, manifest, notes)
    baselines += torch_targets(o, manifest, notes)
    inputs: list[Inputs] = [make_inputs(manifest, b, o.seed) for b in o.batches]
    budget = Budget(iters=o.iters, seconds=o.seconds, warmup=o.warmup)
    cases = (len(runtime) + len(baselines)) * len(inputs)
    configurations = len({(t.backend, t.precision) for t in runtime})
    if announce is not None:
        setup = [t.kind for t in baselines for _ in inputs]
        now = load_average()
        busy = (now[0], usable_cpus()) if now else None
        announce(expected_duration(o, cases, configurations, setup, busy))
    steps = cases * rounds_of(budget, o.rounds) + o.cold_runs * configurations
    with progress_bar(steps if progress else 0, "bench") as step:
        results = run_cases(
            [*runtime, *baselines],
            inputs,
            budget,
            rounds=o.rounds,
            notes=notes,
            step=step,
            load=load,
        )
        _check_runtime_ran(results, runtime)
        measured = dict.fromkeys((r.backend, r.precision) for r in results if r.kind == "runtime")
        cold = []
        for b, p in measured:
            for _ in range(o.cold_runs):
                cold.append(measure_cold_start(o.bundle, b, p, o.threads))
                step()
    return results, cold


def graph_flops(o: BenchOptions, manifest: Manifest, notes: list[str]) -> dict[int, float]:
    """FLOPs of one call of the main graph at each batch size (``genedge.bench.flops``),
    counted on the fp32 file (the other precisions hold the same operators)."""
    path = next((p for p in (onnx_path(manifest, q) for q in PRECISIONS) if p), None)
    if path is None:
        return {}
    try:
        counted = flops_by_batch(path, o.batches)
    except ImportError:
        notes.append("GFLOP/s: not computed (the onnx package is missing: genedge[export])")
        return {}
    except Exception as e:  # onnx shape inference refuses some graphs; timings still stand
        notes.append(f"GFLOP/s: not computed for {path.name} ({type(e).__name__}: {e})"[:300])
        return {}
    for f in counted.values():
        if f.uncounted:
            notes.append(
                f"GFLOP/s: {len(f.uncounted)} node(s) of {path.name} had unknown shapes and are "
                f"not counted (e.g. {f.uncounted[0]}); the GFLOP/s shown are a lower bound"
            )
            break
    return {b: float(f.total) for b, f in counted.items() if f.total}


def run_bench(
    opts: BenchOptions, announce: Callable[[str], None] | None = None, progress: bool = False
) -> BenchReport:
    """Measure the bundle as ``opts`` says; no files written (see ``write_outputs``).

    ``announce``: called with one line on the expected duration before measuring starts.
    ``progress``: draw a progress bar on stderr while measuring, if stderr is a terminal.
    """
    validate_options(opts)
    manifest = read_manifest(opts.bundle)
    o = resolved(opts, manifest)
    notes: list[str] = []
    env = environment(o.bundle, list(o.argv) or None)
    results: list[CaseResult] = []
    cold: list[dict] = []
    text = realtime = None
    trt: list[dict] = []
    flops: dict[int, float] = {}
    load = RoundLoad()
    if manifest.kind == "ar":
        text = text_bench(o, notes, announce, manifest)
    else:
        env["matmul"] = matmul_probe(o.threads)
        flops = graph_flops(o, manifest, notes)
        results, cold = image_bench(o, manifest, notes, announce, progress, load)
        trt = _trtexec(o, manifest, notes) if "trtexec" in o.baselines else []
        if o.fps is not None:
            realtime = realtime_bench(o, results, notes)
    env["gpus_after"] = gpu_memory() if env.get("gpus") else []
    env["load_average_end"] = load_average()
    env["round_load"] = load.record()
    busy = busy_machine_notes(env, o.threads)
    ratios = compute_ratios(results, busy=bool(busy))
    env["read_first"] = busy + disagreeing_ratios_notes(ratios)
    return BenchReport(
        kind=manifest.kind,
        options=_options_dict(o),
        environment=env,
        results=tuple(results),
        ratios=tuple(ratios),
        quality=tuple(quality_rows(manifest)),
        cold_start=tuple(cold),
        realtime=realtime,
        text=text,
        trtexec=tuple(trt),
        peak_rss_mib=peak_rss_bytes() / 2**20,
        notes=tuple(notes),
        flops=flops,
    )


def _trtexec(o: BenchOptions, manifest: Manifest, notes: list[str]) -> list[dict]:
    engines = manifest.find(graph=MAIN_GRAPH.get(manifest.kind, "generator"), format="engine")
    if not engines:
        notes.append("trtexec: the bundle has no TensorRT engine")
        return []
    graph = manifest.graphs.get(MAIN_GRAPH.get(manifest.kind, "generator"))
    io = graph.inputs if graph else ()
    out = []
    for a in (e for e in engines if e.precision in (o.precisions or ())):
        for batch in o.batches:
            shapes = {i.name: [batch if d == "B" else int(d) for d in i.shape] for i in io}
            for graph in (False, True):
                res = run_trtexec(
                    manifest.path_of(a),
                    shapes,
                    seconds=o.seconds or 3.0,
                    cuda_graph=graph,
                    record=a.engine,
                )
                out.append({"file": a.file, "precision": a.precision, "batch": batch, **res})
                if "error" in res:
                    notes.append(f"trtexec {a.file} batch {batch}: {res['error']}")
                    return out
    return out


def busy_machine_notes(env: dict[str, Any], threads: int | None) -> list[str]:
    """Warn when other processes competed for the cores: the 1-minute load average before or
    after the run above the usable CPUs, or other processes taking CPU time during the rounds
    (``env["round_load"]``, ``genedge.cpu_load.RoundLoad``)."""
    cpus = env.get("usable_cpus") or 1
    loads = [la[0] for la in (env.get("load_average"), env.get("load_average_end")) if la]
    rounds = env.get("round_load") or {}
    busy_rounds, n = rounds.get("busy_rounds", 0), rounds.get("rounds", 0)
    if (not loads or max(loads) <= cpus) and not rounds.get("busy"):
        return []
    seen = []
    if loads:
        seen.append(f"1-minute load average up to {max(loads):.1f} on {cpus} usable CPUs")
    if rounds.get("others_share") is not None:
        seen.append(f"other processes took {rounds['others_share']:.0%} of the CPU time meanwhile")
    if busy_rounds:
        waits = sorted(rounds.get("wait_fraction") or [0.0])
        seen.append(
            f"this process waited for a CPU in {busy_rounds} of {n} rounds (median "
            f"{waits[len(waits) // 2]:.0%} of the round's wall time)"
        )
    return [
        f"the machine was busy: {'; '.join(seen)}. Other processes competed for the cores; "
        f"multi-threaded runs ({threads} threads), OpenMP's (PyTorch) most of all, lose "
        "disproportionately when a thread is descheduled at a barrier. Every ratio of this run "
        "is marked 'busy machine' and is unreliable: re-run on a quiet machine (or with "
        "--threads 1)."
    ]


def disagreeing_ratios_notes(ratios: list[Ratio]) -> list[str]:
    """One line when some ratios' rounds disagree (``ratios.rounds_disagree``)."""
    bad = [r for r in ratios if rounds_disagree(r.value, r.iqr, percent=r.percent)]
    if not bad:
        return []
    return [
        f"{len(bad)} of {len(ratios)} ratios have rounds that disagree (their per-round IQR "
        "spans over 25% of the ratio, or the ratio of p50s lies outside it): they are marked "
        "'rounds disagree'; re-run with more --seconds or --rounds on a quiet machine."
    ]


def _options_dict(o: BenchOptions) -> dict[str, Any]:
    d = dataclasses.asdict(o)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
