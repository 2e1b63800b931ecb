"""Train the classic DCGAN with a plain PyTorch loop, then hand it to genedge.

    python examples/byo/train_dcgan.py --minutes 3 --out byo-out               # bundled digits
    python examples/byo/train_dcgan.py --mnist train-images-idx3-ubyte --out byo-out
    python examples/byo/train_dcgan.py --size 64 --minutes 5 --out byo-out64

Training is ordinary user code (dcgan.py and the loop below import nothing from genedge).
Then: ``genedge.export.export_generator`` writes a verified bundle (fp32, fp16, int8 with
the quality gate) and ``genedge.runtime.Sampler`` samples it; ``OUT/samples.png`` shows a grid.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dcgan import Discriminator, Generator28, Generator64, weights_init  # noqa: E402


def read_idx_images(path: str) -> np.ndarray:
    """MNIST IDX images (N, 28, 28) uint8, from the raw or .gz file."""
    raw = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
    n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)


def read_idx_labels(images_path: str) -> np.ndarray | None:
    p = Path(images_path.replace("images-idx3", "labels-idx1"))
    if p == Path(images_path) or not p.exists():
        return None
    raw = (gzip.open if p.name.endswith(".gz") else open)(p, "rb").read()
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


def load_data(mnist: str | None, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (N, 1, size, size) float32 in [-1, 1] and labels (N,) or None."""
    if mnist:
        x = torch.from_numpy(read_idx_images(mnist).astype(np.float32) / 255.0)[:, None]
        labels = read_idx_labels(mnist)
        y = None if labels is None else torch.from_numpy(labels)
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
        y = torch.from_numpy(d.target.astype(np.int64))
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1) * 2 - 1, y


def train(args: argparse.Namespace) -> tuple[torch.nn.Module, int]:
    torch.manual_seed(args.seed)
    x, y = load_data(args.mnist, args.size)
    k = 10 if args.conditional and y is not None else 0
    if args.size == 28:
        G = Generator28(nz=args.nz, ngf=args.ngf, num_classes=k)
    else:
        G = Generator64(nz=args.nz, ngf=args.ngf)
        k = 0
    D = Discriminator(args.size, ndf=args.ngf, num_classes=k)
    G.apply(weights_init)
    D.apply(weights_init)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    t_end, step = time.time() + 60 * args.minutes, 0
    while time.time() < t_end and (args.steps is None or step < args.steps):
        idx = torch.randint(0, len(x), (args.batch_size,))
        real, labels = x[idx], (y[idx] if k else None)
        z = torch.randn(args.batch_size, args.nz, 1, 1)
        fake = G(z, labels) if k else G(z)
        ones, zeros = torch.ones(args.batch_size), torch.zeros(args.batch_size)
        loss_d = bce(D(real, labels), ones) + bce(D(fake.detach(), labels), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake, labels), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step}: loss D {loss_d.item():.3f}, G {loss_g.item():.3f}", flush=True)
    return G.eval(), k


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="byo-out")
    p.add_argument("--mnist", default=None, help="MNIST *-images-idx3-ubyte[.gz] (else digits)")
    p.add_argument("--size", type=int, choices=[28, 64], default=28)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--nz", type=int, default=None, help="latent size (64 for 28x28, 100 for 64x64)")
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--conditional", action="store_true", help="28x28: class-conditional")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.nz = args.nz or (64 if args.size == 28 else 100)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    G, k = train(args)
    torch.save(G.state_dict(), out / "netG.pt")  # what a user keeps: a state_dict
    print(f"saved {out / 'netG.pt'}")

    # ---- genedge: export the module as it is, then sample the bundle through the runtime
    from genedge.export import export_generator
    from genedge.imageio import make_grid, save_png
    from genedge.runtime import Sampler

    bundle = export_generator(
        G,
        out / "bundle",
        latent_dim=args.nz,
        latent_shape=(args.nz, 1, 1),
        num_classes=k,
        eval_data=args.mnist or "digits",
        log=print,
    )
    with Sampler.open(bundle) as s:
        print(f"sampling on {s.info.backend} ({s.info.precision}, {s.info.file})")
        images = s.sample(64, seed=0)  # uint8 (64, H, W, 1)
    save_png(out / "samples.png", make_grid(images, ncols=8, scale=2))
    print(f"wrote {out / 'samples.png'}; bundle: {bundle}")


if __name__ == "__main__":
    main()
