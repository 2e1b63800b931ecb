"""The training loop shared by every family: budget, logging, samples, eval, checkpoints, resume.

``train_run(opts) -> Path`` is the one library call behind ``genedge train``. A family
(``GanFamily``, ``VaeFamily``, ``ArFamily``) owns its models, data shard and optimizers and
exposes ``train_step``, ``sample``, ``evaluate``, ``export_model`` and ``state_dict``; this
module owns the rest. Everything that must not perturb training (samples, eval, saving)
runs under ``torch.random.fork_rng`` so a run that stops and resumes matches one that
never stopped, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from genedge.atomic import atomic_path, atomic_write_text, clean_stale_temps
from genedge.errors import BadInputError, CorruptArtifactError, printable
from genedge.imageio import save_png
from genedge.outputs import LOCK_NAME, check_run_out, clear_run, folder_lock

from . import ddp
from .ar_trainer import ArFamily
from .budget import StepPace
from .checkpoint import save_checkpoint, torch_load_weights_only
from .gan_trainer import GanFamily
from .metrics_log import MetricsLog
from .options import TrainOptions, options_to_json, resolve_options
from .plots import plot_curves
from .progress import Progress
from .transformer_trainer import TransformerFamily
from .vae_trainer import VaeFamily

GENERATOR_FILE = "generator.safetensors"
RESUME_FILE = "resume.pt"


class Family(Protocol):
    kind: str

    def train_step(self) -> dict[str, float]: ...
    def sample(self) -> np.ndarray | str: ...
    def evaluate(self) -> dict[str, float]: ...
    def export_model(self) -> tuple[nn.Module, Any]: ...
    def checkpoint_meta(self) -> dict[str, str]: ...
    def data_info(self) -> dict[str, Any]: ...
    def trained_module(self) -> nn.Module: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def generator(self) -> Path:
        return self.root / GENERATOR_FILE

    @property
    def resume(self) -> Path:
        return self.root / RESUME_FILE

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"


def build_family(opts: TrainOptions, ctx: ddp.DistContext) -> Family:
    if opts.kind == "gan":
        cls: type[Family] = GanFamily
    elif opts.kind == "vae":
        cls = VaeFamily
    elif opts.arch == "transformer":
        cls = TransformerFamily
    else:
        cls = ArFamily
    return cls(opts, ctx)


# ---- RNG state (resume) -------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every RNG as tensors/lists/ints so ``torch.load(weights_only=True)`` can read it back."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            name,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(gauss),
        ],
        "python": [version, list(py_state), py_gauss],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---- the loop -----------------------------------------------------------------------------


class Trainer:
    def __init__(self, opts: TrainOptions, ctx: ddp.DistContext, family: Family) -> None:
        self.opts, self.ctx, self.family = opts, ctx, family
        self.paths = RunPaths(opts.out)
        self.step = 0
        self.log = MetricsLog(self.paths.metrics, enabled=ctx.is_main)
        self.pace = StepPace()
        self._first_step = 0
        self._loss_sums: dict[str, float] = {}
        self._loss_count = 0

    # -- state
    def load_resume(self) -> bool:
        path = self.paths.resume
        if not path.is_file():
            return False
        state = torch_load_weights_only(path)  # hostile pickle: exit 4; garbage: exit 2
        if not isinstance(state, dict):
            raise CorruptArtifactError(
                f"Resume state '{path}' is not a genedge resume file.",
                hint="Delete it to start over, or drop --resume.",
            )
        if state.get("kind") != self.opts.kind:
            raise BadInputError(
                f"--resume: '{path}' holds a `{state.get('kind')}` run; this command trains `{self.opts.kind}`.",
                hint="Resume with the same kind, or pick another --out.",
            )
        try:
            self.family.load_state_dict(state["family"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise BadInputError(
                f"--resume: '{path}' does not match these options ({str(e).splitlines()[0][:160]}).",
                hint="Resume with the options of the original run (see RUN/config.json), or pick another --out.",
            ) from None
        set_rng_state(state["rng"][min(self.ctx.rank, len(state["rng"]) - 1)], self.ctx.device)
        self.step = int(state["step"])
        return True

    def save(self) -> None:
        """Generator checkpoint, then resume state; each atomic (rank 0 only)."""
        rngs = self._gather_rng()
        if not self.ctx.is_main:
            return
        with torch.random.fork_rng(devices=[]):
            model, cfg = self.family.export_model()
            save_checkpoint(
                self.paths.generator,
                model,
                cfg,
                kind=self.opts.kind,
                step=self.step,
                extra=self.family.checkpoint_meta(),
            )
        state = {
            "kind": self.opts.kind,
            "step": self.step,
            "family": self.family.state_dict(),
            "rng": rngs,
        }
        with atomic_path(self.paths.resume) as tmp:
            torch.save(state, tmp)

    def _gather_rng(self) -> list[dict[str, Any]]:
        mine = rng_state(self.ctx.device)
        if not self.ctx.distributed:
            return [mine]
        gathered: list[Any] = [None] * self.ctx.world_size
        torch.distributed.all_gather_object(gathered, mine)
        return gathered

    # -- periodic work
    def record_losses(self, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self._loss_sums[k] = self._loss_sums.get(k, 0.0) + v
        self._loss_count += 1
        if self.step % self.opts.log_every == 0:
            means = {k: v / self._loss_count for k, v in self._loss_sums.items()}
            self.log.write(self.step, "train", {"elapsed_s": round(self.elapsed(), 2), **means})
            self._loss_sums, self._loss_count = {}, 0

    def write_samples(self) -> None:
        if not self.ctx.is_main:
            return
        with torch.random.fork_rng(devices=[]):
            out = self.family.sample()
        if isinstance(out, str):
            atomic_write_text(self.paths.samples_dir / f"step_{self.step:06d}.txt", out)
            atomic_write_text(self.opts.out / "samples.txt", out)
        else:
            save_png(self.paths.samples_dir / f"step_{self.step:06d}.png", out)
            save_png(self.opts.out / "samples.png", out)

    def evaluate(self) -> dict[str, float]:
        if not self.ctx.is_main:
            return {}
        with torch.random.fork_rng(devices=[]):
            metrics = self.family.evaluate()
        self.log.write(self.step, "eval", metrics)
        return metrics

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def done(self) -> bool:
        if self.opts.minutes is not None:
            return ddp.any_rank_says_stop(self.elapsed() >= self.opts.minutes * 60.0, self.ctx)
        return self.step >= (self.opts.steps or 0)

    def run(self, progress: Progress) -> dict[str, float]:
        self._t0 = time.perf_counter()
        self._first_step = self.step  # a resumed run's budget is its own
        o = self.opts
        while not self.done():
            t_step = time.perf_counter()
            losses = self.family.train_step()
            self.pace.add(time.perf_counter() - t_step)
            self.step += 1
            self.record_losses(losses)
            progress.update(self.step, losses)
            if self.step % o.sample_every == 0:
                self.write_samples()
                self.save()
            if self.step % o.eval_every == 0:
                metrics = self.evaluate()
                progress.note_metrics(self.step, metrics)
        progress.close()
        return self.finish()

    def budget_report(self) -> tuple[str, bool]:
        """The run's steps against its idle pace (``StepPace.report``)."""
        budget_s = None if self.opts.minutes is None else self.opts.minutes * 60.0
        return self.pace.report(self.step - self._first_step, budget_s)

    def finish(self) -> dict[str, float]:
        self.save()
        self.write_samples()
        metrics = self.evaluate()
        if self.ctx.is_main:
            plot_curves(self.paths.metrics, self.opts.out / "curves.png")
        return metrics


def write_config(opts: TrainOptions, family: Family) -> None:
    payload = {"options": options_to_json(opts), "data": family.data_info()}
    atomic_write_text(opts.out / "config.json", json.dumps(payload, indent=2) + "\n")


def print_table(title: str, metrics: dict[str, object]) -> None:
    """``metrics`` as a two-column table: numbers and text only; a metric that does not apply
    (None, e.g. conditional accuracy of an unconditional model) is left out."""
    flat = {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }
    width = max((len(k) for k in flat), default=6)
    print(title)
    for k, v in flat.items():
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def train_run(opts: TrainOptions) -> Path:
    """Train one model into ``opts.out``; return the generator checkpoint's path."""
    opts = resolve_options(opts)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    ctx = ddp.setup_distributed(opts.device)
    try:
        return _train(opts, ctx)
    finally:
        ddp.teardown_distributed(ctx)


def _train(opts: TrainOptions, ctx: ddp.DistContext) -> Path:
    if not ctx.is_main:
        return _train_in(opts, ctx)
    check_run_out(opts.out, kind=opts.kind, resume=opts.resume, overwrite=opts.overwrite)
    created = not opts.out.exists()
    try:
        opts.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(
            f"Cannot create --out '{printable(str(opts.out))}': {e.strerror}."
        ) from None
    try:
        with folder_lock(opts.out, who="genedge train"):
            check_run_out(opts.out, kind=opts.kind, resume=opts.resume, overwrite=opts.overwrite)
            clean_stale_temps(opts.out)
            clean_stale_temps(opts.out / "samples")
            if opts.overwrite:
                clear_run(opts.out)
            return _train_in(opts, ctx)
    finally:
        if created and not (opts.out / "config.json").exists():  # failed before it began
            with contextlib.suppress(OSError):
                (opts.out / LOCK_NAME).unlink()
                opts.out.rmdir()


def _train_in(opts: TrainOptions, ctx: ddp.DistContext) -> Path:
    seed_everything(opts.seed)
    family = build_family(opts, ctx)  # same init on every rank (DDP also broadcasts rank 0's)
    if opts.kind != "ar" and opts.image_size is None:  # config.json records the size trained
        opts = dataclasses.replace(opts, image_size=family.image_size)
    seed_everything(opts.seed + 7919 * ctx.rank)  # per-rank noise and batches
    trainer = Trainer(opts, ctx, family)
    resumed = opts.resume and trainer.load_resume()
    if opts.resume and not resumed and ctx.is_main:
        print(f"--resume: no complete state in '{opts.out}' yet; starting from step 0.")
    trainer.log.start(trainer.step if resumed else None)
    if ctx.is_main:
        write_config(opts, family)
    progress = Progress(
        total_steps=opts.steps,
        total_seconds=None if opts.minutes is None else opts.minutes * 60,
        start_step=trainer.step,
        enabled=ctx.is_main,
        fancy=opts.progress,
    )
    t0 = time.perf_counter()
    try:
        metrics = trainer.run(progress)
    finally:
        progress.close()
    ddp.dump_parameter_hash(family.trained_module(), ctx)
    if ctx.is_main and opts.minutes is not None:  # a --steps run made what it was asked
        pace, short = trainer.budget_report()
        print(
            f"{'warning: ' if short else ''}budget: {pace}",
            file=sys.stderr if short else sys.stdout,
        )
    if ctx.is_main:
        took = time.perf_counter() - t0
        print_table(
            f"{opts.kind}: {trainer.step} steps in {took:.1f}s -> {trainer.paths.generator}",
            metrics,
        )
    return trainer.paths.generator
