"""Real-time frame stream: fixed cadence, overlapped inference, a ring of output buffers.

    s = sampler.stream(fps=60, seconds=10, walk="circle")
    for frame in s:                 # frame.image: uint8 (H, W, C), valid until the next frame
        show(frame.image)
    print(s.stats)

Schedule: frame ``i`` is due at ``t0 + i / fps`` (absolute, so errors do not accumulate);
the consumer sleeps until ~1 ms before, then spins until the due time (sub-millisecond
jitter; the spin costs at most ~1 ms of one core per frame). Asked for with
``realtime_priority`` (off by default: a library leaves its caller's scheduling alone;
``genedge live`` turns it on), the consumer's thread runs at ``SCHED_FIFO`` priority from its
first frame until the stream ends or is closed, where the OS permits it (see
``runtime.realtime``), so a busy machine cannot wake it late. A worker thread computes frame
``i + 1`` (and up to ``ring - 1`` ahead) while the consumer holds frame ``i``; ONNX
Runtime releases the GIL while it runs. Each frame is written straight into a slot of a
preallocated ring (``ring >= 3``): the slot the consumer holds is returned to the worker
only when the consumer asks for the next frame.

Late frames (``late=``): a frame is late when it is delivered more than
``late_tolerance_s`` after its due time. ``"drop"``: the late frame is skipped (counted
missed and dropped) and the worker skips slots whose time has passed, so the stream
stays on schedule. ``"block"``: the late frame is delivered at once (counted missed).
A frame that was ready in time but handed over late because the OS woke the consumer
late is delivered and counted as missed and ``late_delivered`` under either policy.

Non-finite outputs (``nonfinite=``, only for graphs with float outputs; uint8 graphs
clamp inside the graph): ``"raise"`` stops the stream with ``NonFiniteOutputError``
(exit 2), ``"drop"`` skips the frame (counted in ``nonfinite`` and as missed), ``"count"``
delivers it anyway and counts it.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genedge.errors import BadInputError, CorruptArtifactError
from genedge.imageio import to_uint8
from genedge.latents import is_int, is_real
from genedge.limits import check_bytes

from .latents import WALKS, LatentPath, make_labels
from .realtime import RealtimeWait

if TYPE_CHECKING:
    from .sampler import Sampler

LATE_POLICIES = ("drop", "block")
NONFINITE_POLICIES = ("raise", "drop", "count")
_END = object()
_HISTORY = 1 << 16  # samples kept for percentiles on endless streams
# late="drop": the worker computes the first slot due after now + LATENCY_MARGIN x its average
# frame time, so a model slower than the frame period still delivers every frame it makes on time
LATENCY_MARGIN = 1.5
MAX_FRAMES = 1e9  # a bounded stream longer than this is a typo (and would overflow the schedule)


class NonFiniteOutputError(CorruptArtifactError):
    """The graph produced NaN/Inf: the model or its quantisation is broken (exit 2)."""


@dataclass(frozen=True)
class Frame:
    """One delivered frame. Times are ``time.perf_counter()`` seconds."""

    index: int  # schedule slot: due at t0 + index / fps
    image: np.ndarray  # uint8 (H, W, C), or (B, H, W, C) when batch > 1; a view into the ring
    t_due: float
    t_ready: float  # inference finished
    t_delivered: float  # handed to the consumer
    latency_s: float  # latent + inference time of this frame


class _History:
    """Fixed-size sample store (no growth after construction): the last ``n`` values."""

    def __init__(self, n: int) -> None:
        self.values = np.zeros(n, np.float64)
        self.count = 0

    def add(self, v: float) -> None:
        self.values[self.count % len(self.values)] = v
        self.count += 1

    def percentile(self, q: float) -> float:
        v = self.values[: min(self.count, len(self.values))]
        return float(np.percentile(v, q)) if len(v) else float("nan")


class StreamStats:
    """Live counters of a stream, readable during and after it. Times in seconds.

    missed_deadlines: late deliveries plus slots skipped; dropped: slots that showed no
    frame; late_delivered: frames shown more than ``late_tolerance_s`` after their due
    time; nonfinite: frames with NaN/Inf. Interval jitter: ``|actual - scheduled|`` gap between consecutive deliveries.
    Latency: latent + inference time per frame. Percentiles cover the last 65536 frames.
    """

    def __init__(self, capacity: int) -> None:
        self.frames = self.missed_deadlines = self.dropped = self.late_delivered = (
            self.nonfinite
        ) = 0
        self._jitter, self._latency = _History(capacity), _History(capacity)
        self.t_start = self.t_end = 0.0  # perf_counter at schedule start / end (0: running)
        self._t_first = self._t_last = 0.0  # first and last delivery
        self.waiter: RealtimeWait | None = None  # how the consumer waits for due times

    missed = property(lambda self: self.missed_deadlines)
    scheduling = property(lambda self: self.waiter.describe() if self.waiter else "normal")
    elapsed_s = property(
        lambda self: ((self.t_end or time.perf_counter()) - self.t_start) if self.t_start else 0.0
    )
    # delivered frames per second: (n - 1) intervals between the first and the last delivery
    fps = property(
        lambda self: (
            (self.frames - 1) / (self._t_last - self._t_first)
            if self.frames > 1 and self._t_last > self._t_first
            else 0.0
        )
    )
    jitter_p50_s = property(lambda self: self._jitter.percentile(50))
    jitter_p99_s = property(lambda self: self._jitter.percentile(99))
    jitter_max_s = property(lambda self: self._jitter.percentile(100))
    latency_p50_s = property(lambda self: self._latency.percentile(50))
    latency_p99_s = property(lambda self: self._latency.percentile(99))
    latency_max_s = property(lambda self: self._latency.percentile(100))

    def to_dict(self) -> dict[str, Any]:
        keys = (
            "frames",
            "missed_deadlines",
            "dropped",
            "late_delivered",
            "nonfinite",
            "elapsed_s",
            "fps",
            "jitter_p50_s",
            "jitter_p99_s",
            "jitter_max_s",
            "latency_p50_s",
            "latency_p99_s",
            "latency_max_s",
        )
        return {**{k: getattr(self, k) for k in keys}, "scheduling": self.scheduling}

    def __repr__(self) -> str:
        return (
            "StreamStats("
            + ", ".join(
                f"{k}={v:.6g}" if not isinstance(v, str) else f"{k}={v!r}"
                for k, v in self.to_dict().items()
            )
            + ")"
        )


class Stream:
    """A fixed-cadence stream of frames from a ``Sampler``; iterate it once.

    fps: frames per second; seconds: duration (None: until closed); walk: "circle" |
    "lerp" | "slerp" latent path (``period_s`` seconds per loop/segment); batch: images
    per frame; seed/labels/truncation: as in ``Sampler.sample``; ring: output slots (>= 3);
    realtime_priority: ``SCHED_FIFO`` priority of the consuming thread from its first frame until
    the stream ends or closes (``None``, the default: normal scheduling, the caller's own);
    ``stats.scheduling`` says what was in effect.
    """

    def __init__(
        self,
        sampler: Sampler,
        *,
        fps: float = 30.0,
        seconds: float | None = None,
        walk: str = "circle",
        late: str = "drop",
        batch: int = 1,
        seed: int = 0,
        labels: Any = None,
        truncation: float = 1.0,
        period_s: float = 4.0,
        ring: int = 3,
        nonfinite: str = "raise",
        late_tolerance_s: float = 1e-3,
        spin_s: float = 1e-3,
        realtime_priority: int | None = None,
    ) -> None:
        _validate(
            fps, seconds, walk, late, batch, ring, nonfinite, period_s, late_tolerance_s, spin_s
        )
        batch, ring = int(batch), int(ring)
        check_bytes(
            f"stream: a ring of {ring} x {batch} images",
            ring * batch * math.prod(sampler.image_shape),
            hint="Lower batch or ring.",
        )
        self.fps, self._dt, self._late, self._nonfinite = float(fps), 1.0 / fps, late, nonfinite
        self._tol = late_tolerance_s
        self._waiter = RealtimeWait(realtime_priority, spin_s)
        self._total = None if seconds is None else max(1, round(seconds * fps))
        self._sampler, self._backend = sampler, sampler.backend
        self._path = LatentPath(
            walk,
            batch,
            sampler.latent_dim,
            seed=seed,
            period=round(min(period_s * fps, 1e12)),
            truncation=truncation,
        )
        self._z = np.empty((batch, sampler.latent_dim), np.float32)  # worker's latent buffer
        y = make_labels(batch, sampler.num_classes if sampler.conditional else 0, labels)
        self._feed = {"z": self._z} if y is None else {"z": self._z, "label": y}
        self._ring = np.zeros((ring, batch, *sampler.image_shape), np.uint8)  # (R, B, H, W, C)
        self._slots = list(self._ring)  # one view object per slot, so the backend binds each once
        self._single = batch == 1
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: int | None = None
        self._expect = 0
        self._prev: tuple[float, float] | None = None  # (t_due, t_delivered) of the last frame
        self._stats = StreamStats(min(self._total or _HISTORY, _HISTORY))
        self._stats.waiter = self._waiter
        self._t0 = 0.0
        self._done = False

    # ---------------------------------------------------------------- consumer side
    def __iter__(self) -> Iterator[Frame]:
        try:
            while (frame := self.next_frame()) is not None:
                yield frame
        finally:
            self.close()

    def next_frame(self) -> Frame | None:
        """Block until the next frame is due and return it; ``None`` when the stream ended."""
        if self._done:  # ended (or closed): a stream is iterated once
            return None
        if self._thread is None:
            self._start()
        if self._held is not None:
            self._free.put(self._held)  # the consumer is done with the previous frame
            self._held = None
        while not self._done:
            item = self._ready.get()
            if item is _END:
                self._count_skipped_tail()
                self._done, self._stats.t_end = True, time.perf_counter()
                self._waiter.release()  # the consumer is back on its own scheduling after the last frame
                break
            if isinstance(item, BaseException):
                self._done = True
                self._waiter.release()
                raise item
            frame = self._deliver(*item)
            if frame is not None:
                return frame
        return None

    def _count_skipped_tail(self) -> None:
        """Slots at the end of a timed stream that the worker skipped (due before it could
        make them): missed and dropped like skipped slots before a delivered frame."""
        if self._total is None or self._stop.is_set() or self._expect >= self._total:
            return
        n = self._total - self._expect
        self._stats.missed_deadlines += n
        self._stats.dropped += n
        self._expect = self._total

    def _deliver(self, k: int, slot: int, t_start: float, t_ready: float) -> Frame | None:
        st = self._stats
        if k > self._expect:  # slots the worker skipped
            st.missed_deadlines += k - self._expect
            st.dropped += k - self._expect
        self._expect = k + 1
        t_due = self._t0 + k * self._dt
        now = time.perf_counter()
        if now > t_due + self._tol:
            st.missed_deadlines += 1
            if self._late == "drop":
                st.dropped += 1
                self._free.put(slot)
                return None
            st.late_delivered += 1
        else:
            now = self._waiter.wait(t_due)
            if now > t_due + self._tol:  # the OS woke us late: delivered late all the same
                st.missed_deadlines += 1
                st.late_delivered += 1
        self._record(t_due, now, t_ready - t_start)
        self._held = slot
        image = self._slots[slot][0] if self._single else self._slots[slot]
        return Frame(k, image, t_due, t_ready, now, t_ready - t_start)

    def _record(self, t_due: float, t_del: float, latency: float) -> None:
        st = self._stats
        if self._prev is not None:
            st._jitter.add(abs((t_del - self._prev[1]) - (t_due - self._prev[0])))
        self._prev = (t_due, t_del)
        st._latency.add(latency)
        if not st.frames:
            st._t_first = t_del
        st._t_last = t_del
        st.frames += 1

    @property
    def stats(self) -> StreamStats:
        """The live counters and percentiles; valid during and after the stream."""
        return self._stats

    # ---------------------------------------------------------------- worker side
    def _start(self) -> None:
        for slot in range(len(self._ring)):
            self._free.put(slot)
        self._compute(
            0, 0
        )  # warm-up: allocates the backend's buffers for this batch (a cold first run)
        t = time.perf_counter()
        self._compute(
            0, 0
        )  # timed warm run: seeds the frame-time estimate the drop policy aims with
        warm = time.perf_counter() - t
        self._latency_est = warm
        # the first frame is due one period after the start (at most 0.1 s: a 1e-7 fps stream
        # must not wait months for frame 0), and never before the worker can have made it
        self._t0 = time.perf_counter() + max(min(self._dt, 0.1), 2 * warm)
        self._stats.t_start = self._t0
        self._thread = threading.Thread(
            target=Stream._work, args=(weakref.ref(self),), name="genedge-stream", daemon=True
        )
        self._thread.start()

    @staticmethod
    def _work(ref: weakref.ref) -> None:
        """The worker loop. It holds the stream only through ``ref`` while it waits for a slot,
        so a stream dropped without ``close()`` is still collected (and its ``__del__`` closes it)."""
        stream = ref()
        if stream is None:
            return
        free, ready, stop, total = stream._free, stream._ready, stream._stop, stream._total
        del stream
        try:
            k = 0
            while not stop.is_set() and (total is None or k < total):
                slot = free.get()
                s = ref()
                if slot is None or s is None or stop.is_set():
                    break
                k = s._work_one(k, slot)
                del s
                if k < 0:
                    break
        except BaseException as e:  # handed to the consumer, which re-raises it
            ready.put(e)
        finally:
            ready.put(_END)

    def _work_one(self, k: int, slot: int) -> int:
        """Compute the frame for slot index ``k`` (or the first one it can still make) into ``slot``;
        returns the next ``k``, or -1 when the schedule is over."""
        if self._late == "drop":  # skip slots that would be due before this frame is ready
            ready_at = time.perf_counter() + LATENCY_MARGIN * self._latency_est
            k = max(k, math.ceil((ready_at - self._t0) / self._dt))
            if self._total is not None and k >= self._total:
                return -1
        t_start = time.perf_counter()
        ok = self._compute(k, slot)
        t_ready = time.perf_counter()
        self._latency_est += 0.2 * ((t_ready - t_start) - self._latency_est)  # moving average
        if ok:
            self._ready.put((k, slot, t_start, t_ready))
        else:
            self._free.put(slot)
        return k + 1

    def _compute(self, k: int, slot: int) -> bool:
        """Frame ``k`` into ring ``slot``; False when it was dropped as non-finite."""
        self._path.at(k, self._z)
        b = self._backend
        if b.outputs[0].np_dtype.kind != "f":
            b.run_unchecked(self._feed, {b.outputs[0].name: self._slots[slot]})
            return True
        with b.lock:  # the backend's own buffer: another thread sharing the Sampler may run next
            x = b.run_unchecked(self._feed, None)[b.outputs[0].name]
            if not np.isfinite(x).all():
                self._stats.nonfinite += 1
                if self._nonfinite == "raise":
                    raise NonFiniteOutputError(
                        f"Frame {k}: the graph '{b.info.file}' produced NaN/Inf.",
                        hint="Check the model; try --precision fp32.",
                    )
                if self._nonfinite == "drop":
                    return False
                x = np.nan_to_num(
                    x, nan=-1.0, posinf=1.0, neginf=-1.0
                )  # "count": deliver, NaN as black
            self._slots[slot][...] = to_uint8(x)
        return True

    def close(self) -> None:
        """Stop the worker and wait for it, and put the consumer's scheduling back; safe to call twice."""
        self._waiter.release()
        self._stop.set()
        if self._thread is not None:
            self._free.put(None)  # unblock a worker waiting for a slot
            self._thread.join(timeout=10.0)
            self._thread = None
        if not self._done and self._stats.t_start:
            self._stats.t_end = time.perf_counter()
        self._done = True

    def __del__(
        self,
    ) -> None:  # dropped without close(): stop the worker, put the consumer's scheduling back
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to clean
            pass

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _validate(
    fps: float,
    seconds: float | None,
    walk: str,
    late: str,
    batch: int,
    ring: int,
    nonfinite: str,
    period_s: float = 4.0,
    late_tolerance_s: float = 1e-3,
    spin_s: float = 1e-3,
) -> None:
    def number(x: object) -> bool:
        return is_real(x) and math.isfinite(x) and x > 0

    checks = [
        (lambda: not number(fps), f"fps {fps!r} must be a finite number > 0"),
        (
            lambda: seconds is not None and not number(seconds),
            f"seconds {seconds!r} must be a finite number > 0 (or None: until closed)",
        ),
        (lambda: walk not in WALKS, f"walk {walk!r} is not one of {WALKS}"),
        (lambda: late not in LATE_POLICIES, f"late {late!r} is not one of {LATE_POLICIES}"),
        (lambda: not is_int(batch) or batch < 1, f"batch {batch!r} must be an integer >= 1"),
        (
            lambda: not is_int(ring) or ring < 3,
            f"ring {ring!r} must be an integer >= 3 (held, computing, queued)",
        ),
        (
            lambda: nonfinite not in NONFINITE_POLICIES,
            f"nonfinite {nonfinite!r} is not one of {NONFINITE_POLICIES}",
        ),
        (
            lambda: not number(period_s),
            f"period_s {period_s!r} must be a finite number > 0 (seconds per walk loop)",
        ),
        (
            lambda: not (number(late_tolerance_s) or late_tolerance_s == 0),
            f"late_tolerance_s {late_tolerance_s!r} must be a finite number >= 0",
        ),
        (
            lambda: not (number(spin_s) or spin_s == 0),
            f"spin_s {spin_s!r} must be a finite number >= 0",
        ),
        (
            lambda: seconds is not None and fps * seconds > MAX_FRAMES,
            f"fps {fps!r} x seconds {seconds!r} is more than {MAX_FRAMES:g} frames (the frame counter's limit); lower fps or seconds, or (Python) pass seconds=None for an endless stream",
        ),
    ]
    for bad, message in checks:
        if bad():
            raise BadInputError(f"stream: {message}.")
