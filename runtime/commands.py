"""Handlers of ``genedge sample``, ``genedge live`` and ``genedge generate`` (flags: genedge/cli.py).

Each handler turns argparse's namespace into one library call. OpenCV (extra ``train``)
is imported only for ``live --video/--window``; ``sample`` writes PNG with numpy alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from genedge.atomic import atomic_path, atomic_write_text
from genedge.errors import BadInputError, IncompatibleEnvironmentError, printable, require
from genedge.imageio import GridLayout, make_grid, save_png
from genedge.latents import seeded_latents

from . import registry
from .latents import make_labels
from .sampler import IMAGE_GRAPHS, Sampler
from .speed_record import auto_precision_note
from .text import TextGenerator, check_request

SAMPLE_CHUNK = 256  # images per run of `genedge sample`: the generator's activations follow it
LIVE_MIN_SIZE = 256  # tiny frames are upscaled (nearest) to at least this many pixels
OVERLAY_BAND = 20  # rows above the picture for the fps / latency / miss overlay


def _open_sampler(args: argparse.Namespace, batch: int):
    """The bundle's Sampler; ``batch`` (images per call) is what a tuned ``auto`` chooses for."""
    return Sampler.open(
        args.bundle,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        allow_version_compatible=getattr(args, "allow_version_compatible", False),
        batch=batch,
    )


def _describe(info: Any) -> str:
    """A SamplerInfo or BackendInfo as one escaped line (its file name came from a manifest)."""
    return printable(f"{info.name} ({info.provider}, {info.precision}, {info.file})", None)


def sample_command(args: argparse.Namespace) -> int:
    """``genedge sample BUNDLE -n 64 --seed 0 [--label 3] --out grid.png``.

    The grid's size is checked before any image is made, and images are made
    ``SAMPLE_CHUNK`` at a time straight into it: memory follows the PNG, not ``-n``.
    The images are those of ``Sampler.sample(n, seed)``: one latent draw, one label cycle.
    """
    if args.n < 1:
        raise BadInputError(f"-n {args.n} must be >= 1.")
    n = args.n
    with _open_sampler(args, batch=min(n, SAMPLE_CHUNK)) as s:
        # default labels cycle 0..K-1: K columns put one class in each column
        cols = (
            s.num_classes if s.num_classes and args.label is None and n >= s.num_classes else None
        )
        layout = GridLayout.plan(n, s.image_shape, ncols=cols, scale=max(1, 64 // s.image_shape[0]))
        grid = layout.empty()
        z = seeded_latents(n, s.latent_dim, args.seed, args.truncation)  # (n, Z)
        y = make_labels(n, s.num_classes, args.label)  # (n,) or None
        for lo in range(0, n, SAMPLE_CHUNK):
            hi = min(n, lo + SAMPLE_CHUNK)
            layout.paste(grid, s.sample_latents(z[lo:hi], None if y is None else y[lo:hi]), lo)
        save_png(args.out, grid)
        print(
            f"wrote {args.out}: {args.n} images {s.image_shape} from seed {args.seed} on "
            f"{_describe(s.info)}; cold start {s.cold_start_s * 1e3:.1f} ms",
            file=sys.stderr,
        )
        _say_auto_precision(args, s)
    return 0


def _say_auto_precision(args: argparse.Namespace, s: Any) -> None:
    """On ort-cpu with no --precision: which artifact the bundle's speed record chose, and why."""
    if args.precision not in (None, "auto") or s.info.backend != registry.reference().name:
        return

    note = auto_precision_note(s.manifest, IMAGE_GRAPHS[s.manifest.kind])
    if note:
        print(f"precision auto -> {note}", file=sys.stderr)


def _upscale(image: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upscale of uint8 (H, W, C) to at least LIVE_MIN_SIZE; C=1 -> BGR for OpenCV."""
    k = max(1, LIVE_MIN_SIZE // max(image.shape[:2]))
    big = image.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else image
    if big.shape[2] == 1:
        big = np.repeat(big, 3, axis=2)
    elif big.shape[2] == 3:
        big = big[..., ::-1]  # RGB -> BGR
    return np.ascontiguousarray(big)


class _Picture:
    """A stand-in frame (just an image) for sizing the video before the first real frame."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image


def _tile_columns(n: int) -> int:
    """Columns for ``n`` tiles: an exact divisor near the square root (10 -> 5x2), else the root."""
    root = int(np.ceil(np.sqrt(n)))
    return next((c for c in range(root, 2 * root + 1) if n % c == 0), root)


def _frame_picture(frame: Any) -> np.ndarray:
    img = frame.image
    return (
        make_grid(img, ncols=_tile_columns(len(img)), pad=0) if img.ndim == 4 else img
    )  # batch > 1: tiled


def _canvas(frame: Any) -> np.ndarray:
    """The picture shown/written for a frame: upscaled, with a black band on top for the overlay."""
    pic = _upscale(_frame_picture(frame))
    return np.ascontiguousarray(np.pad(pic, ((OVERLAY_BAND, 0), (0, 0), (0, 0))))


class _Outputs:
    """Where live frames go: an OpenCV video file and/or window, with an overlay."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cv2 = require("cv2", "train", purpose="`genedge live --video/--window` (OpenCV)")
        self.window, self.fps = args.window, args.fps
        self.writer = None
        if self.window:
            self._open_window()

    def _open_window(self) -> None:
        """Fail before the stream starts when no window can be shown (exit 3)."""
        import os

        hint = "Use --video FILE.mp4 instead, or install a GUI build (pip install opencv-python) on a desktop."
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise IncompatibleEnvironmentError(
                "--window needs a display, and DISPLAY is not set.", hint=hint
            )
        try:
            self.cv2.namedWindow("genedge live", self.cv2.WINDOW_AUTOSIZE)
        except self.cv2.error as e:
            msg = " ".join(str(e).split())
            msg = (msg[:297] + "...") if len(msg) > 300 else (msg or type(e).__name__)
            raise IncompatibleEnvironmentError(
                f"OpenCV cannot open a window: {msg}", hint=hint
            ) from None

    def open_video(self, path: Path, frame_shape: tuple[int, ...]) -> None:
        """Open the video file before the stream starts (frame_shape: (H, W, C) or (B, H, W, C)),
        so creating the file does not make the first frames late."""
        cv2 = self.cv2
        pic = _canvas(_Picture(np.zeros(frame_shape, np.uint8)))
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
        self.writer = cv2.VideoWriter(str(path), fourcc, self.fps, (pic.shape[1], pic.shape[0]))
        if not self.writer.isOpened():
            raise BadInputError(
                f"OpenCV cannot write video '{path.name}'.",
                hint="Use a .mp4 or .avi path in a writable folder.",
            )

    def show(self, frame: Any, stats: Any, repeat: int = 1) -> bool:
        """Write/show one frame (``repeat`` times into the video, covering dropped slots so the
        file keeps the stream's duration); False when the window asked to quit."""
        cv2 = self.cv2
        pic = _canvas(frame)
        text = (
            f"{self.fps:.0f} fps  lat {frame.latency_s * 1e3:.1f} ms  miss {stats.missed_deadlines}"
        )
        cv2.putText(pic, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1, cv2.LINE_AA)
        if self.writer is not None:
            for _ in range(repeat):
                self.writer.write(pic)
        if self.window:
            cv2.imshow("genedge live", pic)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                return False
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.window:
            self.cv2.destroyAllWindows()


def summary_table(stats: Any, fps: float, realtime_priority: int | None = None) -> str:
    """The live summary; ``realtime_priority`` (given by ``genedge live``) adds what was asked for."""
    ms = 1e3
    rows = [
        ("frames", f"{stats.frames}"),
        ("target / achieved fps", f"{fps:g} / {stats.fps:.1f}"),
        (
            "missed deadlines",
            f"{stats.missed_deadlines} ({stats.late_delivered} shown late, {stats.dropped} dropped)",
        ),
        (  # a dropped slot keeps the next frame on time: misses need not show as jitter
            "interval jitter p50 / p99 / max",
            f"{stats.jitter_p50_s * ms:.3f} / {stats.jitter_p99_s * ms:.3f} / "
            f"{stats.jitter_max_s * ms:.3f} ms (between frames shown)",
        ),
        (
            "latency p50 / p99",
            f"{stats.latency_p50_s * ms:.2f} / {stats.latency_p99_s * ms:.2f} ms",
        ),
        ("waiting", stats.scheduling),
    ]
    if realtime_priority is not None:
        asked = (
            f"SCHED_FIFO {realtime_priority} (genedge live's default; --realtime-priority 0: off)"
            if realtime_priority
            else "normal scheduling (--realtime-priority 0)"
        )
        rows.append(("real-time priority asked", asked))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def live_command(args: argparse.Namespace) -> int:
    """``genedge live BUNDLE --fps 30 [--seconds 10] [--video out.mp4] [--window]``.

    The video is written to a temporary file beside ``--video`` and renamed into place when
    the stream ends normally (or the window is closed): an interrupted run leaves no partial file,
    but still prints the summary of the frames it ran (Ctrl-C is how a long run is stopped).
    """
    if args.tile < 1:
        raise BadInputError(f"--tile {args.tile}: expected the images per frame, an integer >= 1.")
    if args.video and Path(args.video).suffix.lower() not in (".mp4", ".avi"):
        raise BadInputError(f"--video {args.video}: expected a .mp4 or .avi file name.")
    outputs = _Outputs(args) if (args.video or args.window) else None
    with _open_sampler(args, batch=args.tile) as s, contextlib.ExitStack() as stack:
        print(f"live: {_describe(s.info)} at {args.fps:g} fps", file=sys.stderr)
        _say_auto_precision(args, s)
        if outputs is not None:
            video = stack.enter_context(atomic_path(args.video)) if args.video else None
            stack.callback(outputs.close)  # released before the file is renamed into place
            if video is not None:
                outputs.open_video(
                    video, (args.tile, *s.image_shape) if args.tile > 1 else s.image_shape
                )
        stream = stack.enter_context(
            s.stream(
                fps=args.fps,
                seconds=args.seconds,
                walk=args.walk,
                late=args.late,
                batch=args.tile,
                seed=args.seed,
                labels=args.label,
                realtime_priority=args.realtime_priority or None,
            )
        )
        last = -1
        try:
            for frame in stream:
                if outputs is not None and not outputs.show(
                    frame, stream.stats, frame.index - last
                ):
                    break
                last = frame.index
        except KeyboardInterrupt:
            stream.close()
            print(summary_table(stream.stats, args.fps, args.realtime_priority))
            raise
        stream.close()
    print(summary_table(stream.stats, args.fps, args.realtime_priority))
    if args.video:
        print(f"wrote {args.video}", file=sys.stderr)
    if getattr(args, "json_out", None):
        record = {
            "bundle": str(args.bundle),
            "backend": s.info.backend,
            "precision": s.info.precision,
            "file": s.info.file,
            "target_fps": args.fps,
            "tile": args.tile,
            **stream.stats.to_dict(),
        }
        atomic_write_text(args.json_out, json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json_out}", file=sys.stderr)
    return 0


def _transformer_sampling(args: argparse.Namespace, tg: Any) -> dict[str, Any]:
    """``--repetition-penalty`` and ``--stop``, which only transformer bundles take."""
    given = {
        k: v
        for k, v in (
            ("repetition_penalty", getattr(args, "repetition_penalty", None)),
            ("stop", tuple(getattr(args, "stop", None) or ())),
        )
        if v not in (None, ())
    }
    if given and tg.manifest.model.transformer is None:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise BadInputError(
            f"{flags} apply to transformer bundles; this is a character-level RNN bundle.",
            hint="Drop those flags for this bundle.",
        )
    return given


def shown_text(text: str) -> str:
    """Generated text as the terminal may show it: its lines and tabs kept, every other
    control or bidi character escaped by ``printable`` (a vocabulary comes from a file)."""
    if text.isprintable():
        return text
    return "".join(ch if ch in "\n\t" else printable(ch, None) for ch in text)


def generate_command(args: argparse.Namespace) -> int:
    """``genedge generate BUNDLE --prompt ...``: characters to stdout as produced, timings to stderr."""
    check_request(args.prompt, args.max_new_tokens)
    with TextGenerator.open(
        args.bundle,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        allow_version_compatible=getattr(args, "allow_version_compatible", False),
        **({"spin_between_runs": False} if getattr(args, "busy_machine", False) else {}),
    ) as tg:
        g = tg.start(
            args.prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            **_transformer_sampling(args, tg),
        )
        sys.stdout.write(shown_text(args.prompt))
        t0 = time.perf_counter()
        while not g.done:
            sys.stdout.write(shown_text(g.step()))
            sys.stdout.flush()
        sys.stdout.write("\n")
        print(
            f"ttft {(g.ttft_s or 0) * 1e3:.1f} ms, {g.tokens_per_s:.0f} tok/s, "
            f"{len(g.tokens)} tokens in {time.perf_counter() - t0:.2f} s on {_describe(tg.info)}",
            file=sys.stderr,
        )
    return 0
