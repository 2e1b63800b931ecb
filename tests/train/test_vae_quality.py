"""The VAE's prior samples on the bundled digits, at the default step budget (slow).

A regression bar for ``genedge train vae --data digits``: the default 2000 steps (what
``make demo``'s minute gives on two idle cores) must keep the demo's sample quality.
The demo's own VAE (1973 steps) scores precision 0.60, recall 0.75 in the digits judge's
features (n=1000); the bars below leave room for thread-count and judge differences.
"""

from __future__ import annotations

import pytest

from genedge.train.options import TrainOptions
from genedge.train.trainer import train_run


@pytest.mark.slow
@pytest.mark.timeout(2400)  # about a minute on two idle cores; far longer on a loaded machine
def test_vae_prior_samples_on_digits_keep_the_demo_quality(tmp_path):
    from genedge.train.eval import evaluate_checkpoint

    ckpt = train_run(
        TrainOptions(
            kind="vae",
            data="digits",
            out=tmp_path / "run",
            eval_every=10_000,
            sample_every=10_000,
            progress=False,
            threads=1,
        )
    )
    metrics = evaluate_checkpoint(ckpt, n=1000)
    assert metrics["step"] == 2000
    assert metrics["precision"] >= 0.5 and metrics["recall"] >= 0.65, metrics
