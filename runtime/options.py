"""``BackendOptions``: everything a backend takes besides the artifact, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from genedge.errors import BadInputError
from genedge.limits import check_threads

from .ort_backend import GRAPH_OPT_LEVELS

MAX_SPIN_US = 1_000_000  # an idle worker spinning a second is a busy loop, not a wait


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend takes besides the artifact. ``threads``: ORT intra-op threads."""

    threads: int | None = None
    inter_op_threads: int | None = None
    graph_optimization: str = "all"
    check_inputs: bool = True
    allow_version_compatible: bool = False  # TensorRT engines carrying host code
    cuda_graphs: bool = False
    device_id: int = 0
    # ORT worker threads spin between runs: lowest latency back to back, but they burn the
    # cores between paced frames (battery, thermals, other work on a 2-core edge box).
    spin: bool = True
    # False: ORT workers spin within a run but stop as soon as it returns (the caller's own
    # work between runs, such as sampling a token, keeps its core)
    spin_between_runs: bool = True
    # microseconds an idle ORT worker spins before it sleeps (None: ORT's own default): a
    # bounded spin keeps workers awake across the short gaps of a loop of runs and frees the
    # cores soon after the loop ends (session.intra_op.spin_duration_us, ORT 1.26 and later)
    spin_us: int | None = None
    static_shapes: bool = True  # openvino: one compiled model per batch size (see openvino_backend)
    batch: int | None = None  # auto: the batch size to choose for (tuned choice; None: 1)
    tune: bool = False  # auto: measure now when this machine has no tuning for the bundle


def backend_options(**fields: object) -> BackendOptions:
    """``BackendOptions`` from keyword arguments, naming the valid ones on a typo."""
    known = set(BackendOptions.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise BadInputError(
            f"Unknown backend option(s) {unknown}; expected some of {sorted(known)}."
        )
    opts = BackendOptions(**fields)  # type: ignore[arg-type]
    validate_options(opts)
    return opts


def validate_options(opts: BackendOptions) -> None:
    """Refuse (exit 2) option values no backend could use, naming the field."""
    for name in ("threads", "inter_op_threads"):
        check_threads(name, getattr(opts, name))
    if opts.graph_optimization not in GRAPH_OPT_LEVELS:
        raise BadInputError(
            f"graph_optimization {opts.graph_optimization!r} is not one of {GRAPH_OPT_LEVELS}."
        )
    if type(opts.device_id) is not int or opts.device_id < 0:
        raise BadInputError(f"device_id {opts.device_id!r}: expected an integer >= 0.")
    if opts.batch is not None and (type(opts.batch) is not int or opts.batch < 1):
        raise BadInputError(
            f"batch {opts.batch!r}: expected the batch size auto chooses for, an integer >= 1."
        )
    if opts.spin_us is not None and (
        type(opts.spin_us) is not int or not 0 <= opts.spin_us <= MAX_SPIN_US
    ):
        raise BadInputError(
            f"spin_us {opts.spin_us!r}: expected None or microseconds from 0 to {MAX_SPIN_US}."
        )
    for name in ("tune", "static_shapes"):
        if type(getattr(opts, name)) is not bool:
            raise BadInputError(f"{name} {getattr(opts, name)!r}: expected True or False.")
