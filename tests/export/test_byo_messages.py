"""Your own generator's refusals name the likeliest fix first, flag errors come before any
heavy import, and the Python entry point says what it did."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from genedge.errors import BadInputError  # noqa: E402
from genedge.export.routes.byo import GeneratorSpec, probe_module  # noqa: E402
from genedge.train.user_module import suggest_name  # noqa: E402


class Conditional(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 8)
        self.fc = torch.nn.Linear(8, 64)

    def forward(self, z, labels):
        return torch.tanh(self.fc(z * self.emb(labels))).reshape(-1, 1, 8, 8)


class Tanh(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 64)

    def forward(self, z):
        return torch.tanh(self.fc(z)).reshape(-1, 1, 8, 8)


def test_a_missing_num_classes_is_named_first_in_whole_sentences():
    with pytest.raises(BadInputError) as e:
        probe_module(Conditional(), GeneratorSpec(latent_dim=8), "Conditional")
    assert e.value.hint.startswith("forward() wants a second argument (class labels)")
    assert "--num-classes K" in e.value.hint and "--latent-shape" not in e.value.hint
    assert "'labels'. forward() wants" in str(e.value)  # a full stop between the two


def test_labels_given_to_a_module_without_them_says_drop_num_classes():
    with pytest.raises(BadInputError) as e:
        probe_module(Tanh(), GeneratorSpec(latent_dim=8, num_classes=10), "Tanh")
    assert "drop --num-classes" in e.value.hint


def test_a_missing_name_suggests_the_generator_never_the_discriminator():
    assert suggest_name("Generator", ["Discriminator", "Generator28"]) == "Generator28"
    assert suggest_name("Model", ["Discriminator", "DCGANGenerator"]) == "DCGANGenerator"
    assert suggest_name("Model", ["D", "Critic"]) == "NAME"


def test_flag_errors_come_before_torch_and_the_users_file(tmp_path):
    code = (
        "import sys; from genedge.cli import main; "
        f"rc = main(['export', '--module', '{tmp_path}/never.py:G', '--weights', 'w.pt', "
        f"'--latent-dim', '8', '--calib-samples', '0', '--out', '{tmp_path}/o']); "
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert "calib_samples" in out.stderr and not (tmp_path / "o").exists()


def test_export_generator_says_what_it_did(tmp_path, capsys):
    from genedge.export.routes.byo import export_generator

    out = export_generator(
        Tanh(),
        tmp_path / "b",
        latent_dim=8,
        precisions=("fp32", "fp16"),
        calib_samples=16,
        quality_samples=16,
        parity_seeds=(0,),
    )
    err = capsys.readouterr().err
    assert "genedge export: model.fp16.onnx: pass - PSNR" in err
    assert f"genedge export: bundle: {out}" in err
    silent = export_generator(
        Tanh(), tmp_path / "c", latent_dim=8, precisions=("fp32",), log=lambda _: None
    )
    assert silent.is_dir() and capsys.readouterr().err == ""
