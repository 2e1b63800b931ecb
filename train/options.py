"""Training options: one frozen dataclass, per-family defaults in one place, one validator.

``genedge train`` turns its argparse namespace into ``TrainOptions`` and calls
``genedge.train.trainer.train_run(opts)``; Python users build ``TrainOptions`` directly.
Fields left ``None`` are resolved from ``FAMILY_DEFAULTS`` by ``resolve_options`` and the
resolved options are what ``RUN/config.json`` records.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

from genedge.errors import BadInputError
from genedge.limits import MAX_EVAL_SAMPLES, check_count, check_threads

KINDS = ("gan", "vae", "ar")
MAX_IMAGE_SIZE = 512  # genedge's generators are sized for small images


def buildable_image_size(size: int) -> bool:
    """Whether the GAN and VAE build ``size`` x ``size`` images.

    They start from a ``base`` x ``base`` map (4 <= base < 8) and double it ``n`` times
    (n >= 1), so a size is ``base * 2**n``; genedge also keeps sizes to multiples of 4
    (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, ..., 512). ``GanConfig.validate`` and
    ``VaeConfig.validate`` apply the same rule (a test checks they agree).
    """
    if isinstance(size, bool) or not isinstance(size, int):
        return False
    if size < 8 or size % 4 or size > MAX_IMAGE_SIZE:
        return False
    n_up = max(1, int(math.log2(size / 4)))
    return size % 2**n_up == 0


BUILDABLE_SIZES = tuple(s for s in range(8, MAX_IMAGE_SIZE + 1) if buildable_image_size(s))


def nearest_buildable_sizes(size: int) -> tuple[int, ...]:
    """The buildable sizes closest to ``size``: one, or two on a tie (ascending)."""
    gap = min(abs(s - size) for s in BUILDABLE_SIZES)
    return tuple(s for s in BUILDABLE_SIZES if abs(s - size) == gap)


def nearest_buildable_size(size: int) -> int:
    """The buildable size closest to ``size``; on a tie the larger (no detail is thrown away)."""
    return nearest_buildable_sizes(size)[-1]


def image_size_problem(size: int) -> str:
    """Why ``size`` cannot be built and which size to pass instead (for error messages)."""
    near = " or ".join(str(s) for s in nearest_buildable_sizes(size))
    shown = ", ".join(str(s) for s in BUILDABLE_SIZES[:13])
    return (
        f"the generators build {shown}, ... up to {MAX_IMAGE_SIZE} (a base of 4 to 7 doubled, "
        f"a multiple of 4); the nearest to {size} is {near}"
    )


@dataclass(frozen=True)
class FamilyDefaults:
    """Defaults sized for two CPU cores (a few minutes to a usable model)."""

    steps: int
    batch_size: int
    lr: float
    sample_every: int
    eval_every: int
    latent_dim: int | None = None


FAMILY_DEFAULTS: dict[str, FamilyDefaults] = {
    "gan": FamilyDefaults(
        steps=2000, batch_size=64, lr=2e-4, sample_every=250, eval_every=250, latent_dim=64
    ),
    "vae": FamilyDefaults(
        steps=2000, batch_size=64, lr=1e-3, sample_every=250, eval_every=250, latent_dim=16
    ),
    "ar": FamilyDefaults(steps=2000, batch_size=32, lr=3e-3, sample_every=250, eval_every=250),
}
ARCHS = ("gru", "lstm", "transformer")  # `train ar --arch`; gru and lstm are recurrent cells
DEFAULT_ARCH = "gru"
RNN_CELLS = ("gru", "lstm")
TOKENIZERS = ("char", "bpe")  # train/tokenizer.py builds each
BYTE_TOKENS = 256
MIN_BPE_VOCAB = BYTE_TOKENS + 1  # the bytes and EOS: fewer could not spell every text
MAX_BPE_VOCAB = 65_536


@dataclass(frozen=True)
class TransformerDefaults:
    """``train ar --arch transformer`` sizes and schedule, chosen to train in minutes on 2 cores."""

    layers: int = 2
    d_model: int = 128
    heads: int = 4
    kv_heads: int = 2  # default_kv_heads(heads)
    # tokens, about 256 characters of stdlib-docs with the BPE: the most a bundle generates.
    # Fewer, longer windows learn less per step: after 600 steps of 1024 tokens, held-out
    # bpc was 2.38 at context 64 (batch 16) and 2.50 at context 256 (batch 4)
    context: int = 128
    tokenizer: str = "bpe"  # a BPE token covers ~2 characters: twice the text per step
    vocab_size: int = 512  # bpe only
    batch_size: int = 8
    lr: float = 3e-3
    # torch threads unless --threads says otherwise: a model this small gains little from a
    # second thread on an idle machine, and on 2 shared cores 2 threads ran 6-15x slower per
    # step than 1 (92-160 ms against 875-2211 ms at load 8-9), their barriers waiting on
    # descheduled peers
    threads: int = 1


TRANSFORMER_DEFAULTS = TransformerDefaults()


def default_kv_heads(heads: int) -> int:
    """Grouped-query attention by default: half as many key/value heads (all when odd)."""
    return heads // 2 if heads % 2 == 0 else heads


TRANSFORMER_FLAGS = ("layers", "d_model", "heads", "kv_heads", "context", "tokenizer", "vocab_size")
TRANSFORMER_LIMITS = {"layers": 64, "d_model": 4096, "heads": 256, "kv_heads": 256, "context": 8192}


@dataclass(frozen=True)
class TrainOptions:
    kind: str
    data: str
    out: Path
    conditional: bool = False
    steps: int | None = None  # exclusive with minutes; both None -> FAMILY_DEFAULTS steps
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "cpu"
    image_size: int | None = None
    latent_dim: int | None = None
    sample_every: int | None = None
    eval_every: int | None = None
    log_every: int = 25
    eval_samples: int = 500
    resume: bool = False
    overwrite: bool = False  # start a finished run over (its own files only)
    cell: str | None = None  # ar only; the older spelling of --arch gru|lstm
    arch: str | None = None  # ar only: gru | lstm | transformer
    layers: int | None = None  # ar --arch transformer only, through vocab_size
    d_model: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    context: int | None = None
    tokenizer: str | None = None  # char | bpe
    vocab_size: int | None = None  # bpe only
    progress: bool = True
    threads: int | None = None  # torch intra-op threads; None: torch's default


def validate_options(opts: TrainOptions) -> None:
    """Raise ``BadInputError`` naming the offending field(s)."""
    if opts.kind not in KINDS:
        raise BadInputError(f"--kind: received {opts.kind!r}; expected one of {', '.join(KINDS)}.")
    if opts.resume and opts.overwrite:
        raise BadInputError(
            "--resume and --overwrite were both given; continue the run or start it over, not both."
        )
    if not isinstance(opts.data, str) or not opts.data.strip():
        raise BadInputError(
            "--data is empty; pass digits, mnist, fashion-mnist, an image folder, an .npz/.npy "
            "file, MNIST IDX files "
            "or (for ar) a text file or stdlib-docs."
        )
    if opts.steps is not None and opts.minutes is not None:
        raise BadInputError("--steps and --minutes were both given; pass one training budget.")
    _positive("--steps", opts.steps)
    _positive("--minutes", opts.minutes)
    _positive("--batch-size", opts.batch_size)
    _positive("--lr", opts.lr)
    _positive("--latent-dim", opts.latent_dim)
    _positive("--sample-every", opts.sample_every)
    _positive("--eval-every", opts.eval_every)
    _positive("--log-every", opts.log_every)
    _positive("--eval-samples", opts.eval_samples)
    check_threads("--threads", opts.threads)
    check_count("--seed", opts.seed, 2**63 - 1, "torch seeds are 64-bit integers", low=0)
    for name, value, limit, reason in _LIMITS:
        if getattr(opts, value) is not None and getattr(opts, value) > limit:
            raise BadInputError(
                f"{name}: received {getattr(opts, value)}; the limit is {limit:,} ({reason})."
            )
    if opts.image_size is not None and (
        isinstance(opts.image_size, bool) or not isinstance(opts.image_size, int)
    ):
        raise BadInputError(
            f"--image-size: received {opts.image_size!r}; expected a whole number such as 28."
        )
    if (
        opts.image_size is not None
        and opts.image_size <= MAX_IMAGE_SIZE
        and not buildable_image_size(opts.image_size)
    ):
        raise BadInputError(
            f"--image-size: received {opts.image_size}; {image_size_problem(opts.image_size)}.",
            hint=f"Pass --image-size {nearest_buildable_size(opts.image_size)}, or leave it out "
            "to train at the data's own size.",
        )
    if opts.kind == "ar":
        for name, value in (
            ("--conditional", opts.conditional),
            ("--image-size", opts.image_size),
            ("--latent-dim", opts.latent_dim),
        ):
            if value:
                raise BadInputError(f"{name} does not apply to `train ar` (a text model); drop it.")
        _validate_arch(opts)
    else:
        for name in ("cell", "arch", *TRANSFORMER_FLAGS):
            if getattr(opts, name) is not None:
                flag = "--" + name.replace("_", "-")
                raise BadInputError(
                    f"{flag} applies to `train ar` only, not `train {opts.kind}`; drop it."
                )
    if not isinstance(opts.device, str) or not re.fullmatch(r"cpu|cuda(:[0-9]{1,3})?", opts.device):
        raise BadInputError(f"--device: received {opts.device!r}; expected cpu, cuda or cuda:N.")


# (flag, field, limit, reason): sizes past these exhaust memory long before training helps
_LIMITS = (
    ("--batch-size", "batch_size", 4096, "larger batches of small images exhaust memory"),
    (
        "--image-size",
        "image_size",
        MAX_IMAGE_SIZE,
        "genedge's generators are sized for small images",
    ),
    ("--latent-dim", "latent_dim", 4096, "the generator's first layer grows with it"),
    ("--eval-samples", "eval_samples", MAX_EVAL_SAMPLES, "evaluation keeps every sample in memory"),
)


def _validate_arch(opts: TrainOptions) -> None:
    """``--arch``/``--cell`` agree, and the transformer's flags are given to it only and fit."""
    if opts.arch is not None and opts.arch not in ARCHS:
        raise BadInputError(f"--arch: received {opts.arch!r}; expected one of {', '.join(ARCHS)}.")
    if opts.cell is not None and opts.cell not in RNN_CELLS:
        raise BadInputError(f"--cell: received {opts.cell!r}; expected gru or lstm.")
    if opts.cell is not None and opts.arch is not None and opts.cell != opts.arch:
        raise BadInputError(
            f"--cell {opts.cell} and --arch {opts.arch} disagree; pass --arch alone."
        )
    if (opts.arch or opts.cell or "gru") != "transformer":
        given = [
            f"--{f.replace('_', '-')}" for f in TRANSFORMER_FLAGS if getattr(opts, f) is not None
        ]
        if given:
            raise BadInputError(
                f"{', '.join(given)} apply to `train ar --arch transformer` only; add "
                "--arch transformer or drop them."
            )
        return
    for name, limit in TRANSFORMER_LIMITS.items():
        _positive_int("--" + name.replace("_", "-"), getattr(opts, name), limit)
    _check_transformer_shape(opts)
    if opts.tokenizer is not None and opts.tokenizer not in TOKENIZERS:
        raise BadInputError(
            f"--tokenizer: received {opts.tokenizer!r}; expected one of {', '.join(TOKENIZERS)}."
        )
    if opts.vocab_size is not None:
        if (opts.tokenizer or TRANSFORMER_DEFAULTS.tokenizer) != "bpe":
            raise BadInputError(
                "--vocab-size applies to --tokenizer bpe only (the char tokenizer holds the 256 "
                "bytes); add --tokenizer bpe or drop it."
            )
        check_vocab_size(opts.vocab_size)


def check_vocab_size(vocab_size: int) -> None:
    """Refuse (exit 2) a BPE vocabulary too small to spell every text or past the limit."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise BadInputError(f"--vocab-size: received {vocab_size!r}; expected a whole number.")
    if not MIN_BPE_VOCAB <= vocab_size <= MAX_BPE_VOCAB:
        raise BadInputError(
            f"--vocab-size: received {vocab_size}; expected {MIN_BPE_VOCAB} to {MAX_BPE_VOCAB:,} "
            f"(a byte-level BPE holds the {BYTE_TOKENS} bytes and an end-of-text token).",
            hint="Try --vocab-size 512.",
        )


def _check_transformer_shape(opts: TrainOptions) -> None:
    d = TRANSFORMER_DEFAULTS
    d_model, heads = opts.d_model or d.d_model, opts.heads or d.heads
    kv_heads = opts.kv_heads or default_kv_heads(heads)
    if d_model % heads or (d_model // heads) % 2:
        raise BadInputError(
            f"--d-model {d_model} --heads {heads}: each head needs an even width (rotary "
            "embeddings turn pairs), so d_model must be heads x an even number.",
            hint=f"Try --d-model {heads * max(2, 2 * round(d_model / heads / 2))}.",
        )
    if heads % kv_heads:
        raise BadInputError(
            f"--heads {heads} --kv-heads {kv_heads}: the query heads must share key/value heads "
            "evenly, so heads must be a multiple of kv-heads.",
            hint=f"Try --kv-heads {math.gcd(heads, kv_heads)}.",
        )


def _positive_int(name: str, value: int | None, limit: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise BadInputError(
            f"{name}: received {value!r}; expected a whole number from 1 to {limit:,}."
        )


def _positive(name: str, value: float | None) -> None:
    """Refuse a value that is not a finite number > 0 (NaN, inf, 0 and negatives)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInputError(f"{name}: received {value!r}; expected a finite positive number.")
    if value <= 0:
        raise BadInputError(f"{name}: received {value}; expected a positive number.")


def resolve_options(opts: TrainOptions) -> TrainOptions:
    """Validate, then fill every ``None`` default from ``FAMILY_DEFAULTS``."""
    validate_options(opts)
    d = FAMILY_DEFAULTS[opts.kind]
    steps = opts.steps if opts.steps is not None or opts.minutes is not None else d.steps
    arch = (opts.arch or opts.cell or DEFAULT_ARCH) if opts.kind == "ar" else None
    t = TRANSFORMER_DEFAULTS if arch == "transformer" else None
    opts = dataclasses.replace(
        opts,
        out=Path(opts.out),
        steps=steps,
        batch_size=opts.batch_size or (t.batch_size if t else d.batch_size),
        lr=opts.lr or (t.lr if t else d.lr),
        latent_dim=opts.latent_dim or d.latent_dim,
        sample_every=opts.sample_every or d.sample_every,
        eval_every=opts.eval_every or d.eval_every,
        cell=arch if arch in RNN_CELLS else None,
        arch=arch,
    )
    return _resolve_transformer(opts) if t else opts


def _resolve_transformer(opts: TrainOptions) -> TrainOptions:
    d = TRANSFORMER_DEFAULTS
    tokenizer = opts.tokenizer or d.tokenizer
    heads = opts.heads or d.heads
    return dataclasses.replace(
        opts,
        threads=opts.threads or d.threads,
        layers=opts.layers or d.layers,
        d_model=opts.d_model or d.d_model,
        heads=heads,
        kv_heads=opts.kv_heads or default_kv_heads(heads),
        context=opts.context or d.context,
        tokenizer=tokenizer,
        vocab_size=(opts.vocab_size or d.vocab_size) if tokenizer == "bpe" else None,
    )


def options_to_json(opts: TrainOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()}
