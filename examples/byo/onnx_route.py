"""The same DCGAN, exported to ONNX by user code under its own tensor names, then handed to
``genedge export`` as an existing ONNX generator.

    python examples/byo/train_dcgan.py --conditional --out byo-out     # writes byo-out/netG.pt
    python examples/byo/onnx_route.py --weights byo-out/netG.pt --conditional --out byo-onnx

The user's file names its tensors ``noise`` (B, nz, 1, 1), ``digit`` (B,) and ``picture``
(B, 1, 28, 28) in [-1, 1]; genedge finds them (or takes --latent-input/--label-input/
--image-output), wraps the graph into its own contract (z (B, nz) -> uint8 NHWC image) and
verifies every artifact against the original file run by ONNX Runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dcgan import Generator28  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--weights", default=None, help="netG.pt from train_dcgan.py (default: random)")
    p.add_argument("--conditional", action="store_true")
    p.add_argument("--nz", type=int, default=64)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--out", default="byo-onnx")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # ---- user code: a plain torch.onnx.export with the user's own names
    k = 10 if args.conditional else 0
    G = Generator28(nz=args.nz, ngf=args.ngf, num_classes=k)
    if args.weights:
        G.load_state_dict(torch.load(args.weights, weights_only=True))
    G.eval()
    example = (torch.zeros(2, args.nz, 1, 1),) + ((torch.zeros(2, dtype=torch.long),) if k else ())
    names = ["noise", "digit"][: len(example)]
    torch.onnx.export(
        G,
        example,
        str(out / "dcgan_user.onnx"),
        dynamo=False,
        opset_version=17,
        input_names=names,
        output_names=["picture"],
        dynamic_axes={n: {0: "batch"} for n in [*names, "picture"]},
    )
    print(f"wrote {out / 'dcgan_user.onnx'} (inputs {names}, output 'picture')")

    # ---- genedge: the CLI on the ONNX file, then the runtime on the bundle
    from genedge.cli import main as genedge

    argv = ["export", str(out / "dcgan_user.onnx"), "--out", str(out / "bundle")]
    if k:
        argv += ["--num-classes", str(k), "--eval-data", "digits"]
    print("genedge " + " ".join(argv))
    rc = genedge(argv)
    if rc:
        raise SystemExit(rc)

    from genedge.imageio import make_grid, save_png
    from genedge.runtime import Sampler

    with Sampler.open(out / "bundle") as s:
        print(f"sampling on {s.info.backend} ({s.info.precision}, {s.info.file})")
        save_png(out / "samples.png", make_grid(s.sample(64, seed=0), ncols=8, scale=2))
    print(f"wrote {out / 'samples.png'}")


if __name__ == "__main__":
    main()
