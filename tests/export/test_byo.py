"""Bring your own generator: a PyTorch module in user code or an existing ONNX file, exported
through the same stages as a checkpoint and sampled through the runtime."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from genedge.cli import main  # noqa: E402

FAST = dict(calib_samples=32, quality_samples=16, parity_seeds=(0,))
FAST_FLAGS = ["--calib-samples", "32"]

USER_CODE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class DCGAN(nn.Module):
        # The classic DCGAN generator: ConvTranspose2d + BatchNorm + ReLU, Tanh out; 16x16.
        def __init__(self, nz=8, ngf=8, nc=1):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                nn.Tanh(),
            )

        def forward(self, z):
            return self.main(z)

    def make_generator(nz=8):
        return DCGAN(nz=nz)

    class Flat(nn.Module):  # returns (B, H*W): not an image
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 64)

        def forward(self, z):
            return torch.tanh(self.fc(z))

    class Loud(nn.Module):  # returns values in [-3, 3] although tanh-like output is declared
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 64)

        def forward(self, z):
            return 3 * torch.tanh(100 * self.fc(z)).reshape(-1, 1, 8, 8)

    class Nan(nn.Module):
        def forward(self, z):
            return (z.reshape(-1, 1, 2, 4) * float("nan"))

    class Histc(nn.Module):  # aten::histc has no ONNX export
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 64)

        def forward(self, z):
            x = torch.tanh(self.fc(z)).reshape(-1, 1, 8, 8)
            return x + 0 * torch.histc(z, 4).sum()
    """
)


def dcgan(seed: int = 0):
    """A DCGAN written the way a user writes it, with non-trivial BatchNorm statistics."""
    ns: dict = {}
    exec(USER_CODE, ns)  # the same code the CLI tests import from a file
    torch.manual_seed(seed)
    g = ns["DCGAN"]().eval()
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return g


def as_uint8_nhwc(x: np.ndarray, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    x = (x - lo) * (2.0 / (hi - lo)) - 1.0
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> dict[str, Path]:
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("user")
    (d / "gen.py").write_text(USER_CODE)
    g = dcgan()
    torch.save(g.state_dict(), d / "netG.pt")
    torch.save({"epoch": 3, "netG": g.state_dict()}, d / "ckpt.pt")
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(d / "netG.safetensors"))
    sd = g.state_dict()
    sd["extra.weight"] = torch.zeros(2)
    sd.pop("main.1.weight")
    sd["main.0.weight"] = torch.zeros(8, 4, 4, 4)
    torch.save(sd, d / "wrong.pt")
    opts = argparse.Namespace(lr=2e-4)  # training options pickled beside the weights
    torch.save({"netG": g.state_dict(), "opt": opts}, d / "pickled.pt")
    return {
        k: d / n
        for k, n in [
            ("file", "gen.py"),
            ("pt", "netG.pt"),
            ("ckpt", "ckpt.pt"),
            ("wrong", "wrong.pt"),
            ("st", "netG.safetensors"),
            ("pickled", "pickled.pt"),
        ]
    }


@pytest.fixture(scope="module")
def dcgan_bundle(tmp_path_factory) -> tuple[Path, object]:
    from genedge.export.routes.byo import export_generator

    g = dcgan()
    out = export_generator(
        g, tmp_path_factory.mktemp("b") / "dcgan", latent_dim=8, latent_shape=(8, 1, 1), **FAST
    )
    return out, g


# ---------------------------------------------------------------- the module route
def test_dcgan_exports_fp32_fp16_int8_and_sampler_matches_module(dcgan_bundle):
    from genedge.runtime import Sampler

    bundle, g = dcgan_bundle
    m = json.loads((bundle / "manifest.json").read_text())
    by_prec = {a["precision"]: a for a in m["artifacts"] if a["format"] == "onnx"}
    assert set(by_prec) == {"fp32", "fp16", "int8"}
    assert m["kind"] == "gan" and m["model"]["latent_shape"] == [8, 1, 1]
    assert m["source"]["type"] == "module" and len(m["source"]["weights_sha256"]) == 64
    z = np.random.default_rng(5).standard_normal((6, 8)).astype(np.float32)
    with torch.no_grad():
        want = as_uint8_nhwc(g(torch.from_numpy(z).reshape(-1, 8, 1, 1)).numpy())
    with Sampler.open(bundle, backend="ort-cpu", precision="fp32") as s:
        got = s.sample_latents(z)
    assert got.shape == (6, 16, 16, 1) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    with Sampler.open(bundle, backend="ort-cpu", precision="int8") as s:
        assert np.abs(s.sample_latents(z).astype(int) - want.astype(int)).mean() < 8


def test_dcgan_bundle_streams_like_our_own(dcgan_bundle):
    from genedge.runtime import Sampler

    bundle, _ = dcgan_bundle
    with Sampler.open(bundle, backend="ort-cpu") as s:
        frames = [f.image.copy() for f in s.stream(fps=50, seconds=0.2)]
    assert len(frames) >= 3 and frames[0].shape == (16, 16, 1) and frames[0].dtype == np.uint8


def test_uniform_prior_is_mapped_in_graph(tmp_path):
    from genedge.export.routes.byo import export_generator
    from genedge.runtime import Sampler

    g = dcgan(seed=4)
    out = export_generator(
        g,
        tmp_path / "u",
        latent_dim=8,
        latent_shape=(8, 1, 1),
        latent_dist="uniform",
        precisions=("fp32",),
        **FAST,
    )
    z = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    with torch.no_grad():
        u = torch.erf(torch.from_numpy(z) / np.sqrt(2.0))  # N(0, 1) -> U(-1, 1)
        want = as_uint8_nhwc(g(u.reshape(-1, 8, 1, 1)).numpy())
    with Sampler.open(out, backend="ort-cpu", precision="fp32") as s:
        assert np.abs(s.sample_latents(z).astype(int) - want.astype(int)).max() <= 1
    assert json.loads((out / "manifest.json").read_text())["model"]["latent_prior"] == "uniform"


def test_int8_dcgan_really_quantizes_conv_transpose(dcgan_bundle):
    import onnx

    from genedge.export.stages.int8 import quantized_weight_nodes

    bundle, _ = dcgan_bundle
    fp32 = onnx.load(str(bundle / "model.onnx"))
    int8 = onnx.load(str(bundle / "model.int8.onnx"))
    ups = [n.name for n in fp32.graph.node if n.op_type == "ConvTranspose"]
    assert ups and "Gemm" in {n.op_type for n in fp32.graph.node}  # first layer made dense
    # every strided deconvolution became int8 phase convolutions, none left in float
    assert "ConvTranspose" not in {n.op_type for n in int8.graph.node}
    quantized = quantized_weight_nodes(int8)
    for up in ups:
        assert sum(q.startswith(f"{up}/phase") for q in quantized) == 4


def test_export_records_cpu_speed_and_auto_never_picks_slower_than_fp32(dcgan_bundle):
    from genedge.runtime import Sampler

    bundle, _ = dcgan_bundle
    m = json.loads((bundle / "manifest.json").read_text())
    speed = {a["precision"]: a["speed"] for a in m["artifacts"] if a["format"] == "onnx"}
    for rec in speed.values():
        assert set(rec["batch"]) == {"1", "16"} and rec["backend"] == "ort-cpu"
        assert rec["batch"]["1"]["p50_ms"] > 0 and rec["batch"]["1"]["rounds"] >= 3
    with Sampler.open(bundle, backend="ort-cpu") as s:
        chosen = s.info.precision
    base = speed["fp32"]["batch"]
    for b in ("1", "16"):
        assert speed[chosen]["batch"][b]["p50_ms"] <= base[b]["p50_ms"]


def _art(precision, p50s, approved=True):
    from genedge.manifest import Artifact

    speed = {"batch": {b: {"p50_ms": v} for b, v in zip(("1", "16"), p50s, strict=True)}}
    return Artifact(
        f"model.{precision}.onnx",
        "generator",
        "onnx",
        "0" * 64,
        1,
        precision,
        {"verdict": "pass"},
        quality_approved=approved,
        speed=speed,
    )


def test_fastest_measured_rules():
    from genedge.runtime.speed_record import fastest_in_record as fastest_measured

    fp32 = _art("fp32", (1.0, 10.0), approved=False)
    slow_int8 = {"fp32": fp32, "int8": _art("int8", (1.5, 30.0))}
    assert fastest_measured(slow_int8)[0].precision == "fp32"
    fast_int8 = {"fp32": fp32, "int8": _art("int8", (0.5, 5.0))}
    assert fastest_measured(fast_int8)[0].precision == "int8"
    mixed = {"fp32": fp32, "int8": _art("int8", (0.5, 12.0))}  # slower at batch 16
    assert fastest_measured(mixed)[0].precision == "fp32"
    unapproved = {"fp32": fp32, "int8": _art("int8", (0.5, 5.0), approved=False)}
    assert fastest_measured(unapproved)[0].precision == "fp32"
    assert fastest_measured({"fp32": dataclasses_replace(fp32, speed=None)}) is None


def dataclasses_replace(a, **kw):
    import dataclasses

    return dataclasses.replace(a, **kw)


@pytest.mark.parametrize("weights", ["pt", "ckpt", "st"])
def test_cli_module_file_and_pt_weights(user_files, tmp_path, weights):
    out = tmp_path / "b"
    rc = main(
        [
            "export",
            "--module",
            f"{user_files['file']}:make_generator",
            "--weights",
            str(user_files[weights]),
            "--latent-dim",
            "8",
            "--latent-shape",
            "8,1,1",
            "--module-args",
            '{"nz": 8}',
            "--precision",
            "fp32",
            "--out",
            str(out),
            *FAST_FLAGS,
        ]
    )
    assert rc == 0
    src = json.loads((out / "manifest.json").read_text())["source"]
    assert src["module"].endswith("gen.py:make_generator") and len(src["weights_sha256"]) == 64


def test_export_help_warns_that_module_code_runs(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "RUNS ITS CODE" in text and "only pass files you trust" in text


# ---------------------------------------------------------------- bad module input
def run_bad(argv: list[str], out: Path, capsys) -> tuple[int, str]:
    rc = main(["export", *argv, "--precision", "fp32", "--out", str(out), *FAST_FLAGS])
    err = capsys.readouterr().err
    assert not out.exists(), "a failed export left something at --out"
    return rc, err


def module_args(user_files, name, *extra, weights=None):
    w = ["--weights", str(user_files[weights]) if weights else "none"]
    return ["--module", f"{user_files['file']}:{name}", *w, "--latent-dim", "8", *extra]


def test_name_not_found(user_files, tmp_path, capsys):
    rc, err = run_bad(module_args(user_files, "Generator"), tmp_path / "o", capsys)
    assert rc == 2 and "no class or function named 'Generator'" in err and "DCGAN" in err


def test_weights_that_do_not_fit_name_keys(user_files, tmp_path, capsys):
    argv = module_args(user_files, "DCGAN", "--latent-shape", "8,1,1", weights="wrong")
    rc, err = run_bad(argv, tmp_path / "o", capsys)
    assert rc == 2
    assert "missing keys: main.1.weight" in err and "unexpected keys: extra.weight" in err
    assert "main.0.weight: file (8, 4, 4, 4), module (8, 16, 4, 4)" in err


def test_pickle_holding_more_than_tensors_is_refused(user_files, tmp_path, capsys):
    argv = module_args(user_files, "DCGAN", "--latent-shape", "8,1,1", weights="pickled")
    rc, err = run_bad(argv, tmp_path / "o", capsys)
    assert rc == 4 and "more than tensors" in err and "GLOBAL argparse.Namespace" in err
    assert "weights_only=False will" not in err and "set to `False`" not in err


def test_output_not_an_image(user_files, tmp_path, capsys):
    rc, err = run_bad(module_args(user_files, "Flat"), tmp_path / "o", capsys)
    assert rc == 2 and "(8, 64)" in err and "(B, C, H, W) with C = 1 or 3" in err


def test_output_outside_declared_range(user_files, tmp_path, capsys):
    rc, err = run_bad(module_args(user_files, "Loud"), tmp_path / "o", capsys)
    assert rc == 2 and "returned values in [-3, 3]" in err and "[-1, 1]" in err


def test_nan_output(user_files, tmp_path, capsys):
    rc, err = run_bad(module_args(user_files, "Nan"), tmp_path / "o", capsys)
    assert rc == 2 and "NaN/Inf" in err


def test_unexportable_op_is_named(user_files, tmp_path, capsys):
    rc, err = run_bad(module_args(user_files, "Histc"), tmp_path / "o", capsys)
    assert rc == 2 and "aten::histc" in err


def test_wrong_latent_shape_hint(user_files, tmp_path, capsys):
    rc, err = run_bad(module_args(user_files, "DCGAN", weights="pt"), tmp_path / "o", capsys)
    assert rc == 2 and "--latent-shape 8,1,1" in err


# ---------------------------------------------------------------- the ONNX route
class NamedGen(torch.nn.Module):
    """A conditional generator with NHWC output in [0, 1], exported under the user's names."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.emb = torch.nn.Embedding(k, 8)
        self.g = dcgan(seed=1)

    def forward(self, noise, cls):
        x = self.g((noise * self.emb(cls)).reshape(-1, 8, 1, 1))
        return (0.5 * x + 0.5).permute(0, 2, 3, 1)  # (B, H, W, C) in [0, 1]


def export_user_onnx(path: Path, module, args, names, outs=("pic",), dynamic=True, dyn_axes=None):
    import warnings

    axes = dyn_axes or {n: {0: "batch"} for n in (*names, *outs)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            opset_version=13,
            input_names=list(names),
            output_names=list(outs),
            dynamic_axes=axes if dynamic else None,
        )
    return path


def test_onnx_with_foreign_names_round_trips(tmp_path, capsys):
    from genedge.runtime import Sampler

    g = NamedGen().eval()
    src = export_user_onnx(
        tmp_path / "user.onnx",
        g,
        (torch.zeros(2, 8), torch.zeros(2, dtype=torch.long)),
        ("noise", "cls"),
    )
    out = tmp_path / "b"
    rc = main(["export", str(src), "--output-range", "0,1", "--out", str(out), *FAST_FLAGS])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["num_classes"] == 3  # read from the embedding table
    assert m["source"]["tensors"] == {"latent": "noise", "label": "cls", "image": "pic"}
    assert {a["precision"] for a in m["artifacts"]} == {"fp32", "fp16", "int8"}
    z = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    with torch.no_grad():
        x = g(torch.from_numpy(z), torch.from_numpy(y)).numpy().transpose(0, 3, 1, 2)
    with Sampler.open(out, backend="ort-cpu", precision="fp32") as s:
        got = s.sample_latents(z, y)
    assert np.abs(got.astype(int) - as_uint8_nhwc(x, 0.0, 1.0).astype(int)).max() <= 1


def test_onnx_fixed_batch_made_dynamic(tmp_path):
    from genedge.export.options import ExportOptions
    from genedge.export.routes.source_onnx import export_onnx_file
    from genedge.runtime import Sampler

    g = dcgan(seed=2)
    src = export_user_onnx(
        tmp_path / "b1.onnx", g, (torch.zeros(1, 8, 1, 1),), ("x",), dynamic=False
    )
    said: list[str] = []
    out = export_onnx_file(
        src,
        ExportOptions(source=src, out=tmp_path / "b", precisions=("fp32",), **FAST),
        log=said.append,
    )
    assert any("latent 'x' float32 [1, 8, 1, 1]" in s for s in said)  # what it matched
    assert any("fixed batch 1 made dynamic" in s for s in said)
    z = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        want = as_uint8_nhwc(g(torch.from_numpy(z).reshape(-1, 8, 1, 1)).numpy())
    with Sampler.open(out, backend="ort-cpu", precision="fp32") as s:
        assert np.abs(s.sample_latents(z).astype(int) - want.astype(int)).max() <= 1


def test_onnx_fixed_batch_that_cannot_be_made_dynamic_is_refused(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([2, 1, 2, 2], np.int64), "shape")  # batch 1 -> 2
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["z", "shape"], ["r"]),
            helper.make_node("Tanh", ["r"], ["img"]),
        ],
        "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [2, 1, 2, 2])],
        initializer=[shape],
    )
    src = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    rc, err = run_bad([str(src)], tmp_path / "o", capsys)
    assert rc == 2 and "fixed batch size 1 that cannot be made dynamic" in err


class TwoLatents(torch.nn.Module):
    def forward(self, a, b):
        return torch.tanh(a + b).reshape(-1, 1, 2, 4)


def test_onnx_several_candidate_inputs_need_names(tmp_path, capsys):
    src = export_user_onnx(
        tmp_path / "two.onnx",
        TwoLatents(),
        (torch.zeros(2, 8), torch.zeros(2, 8)),
        ("a", "b"),
        ("img",),
    )
    rc, err = run_bad([str(src)], tmp_path / "o", capsys)
    assert rc == 2 and "2 candidate latent inputs" in err and "--latent-input" in err
    rc, err = run_bad([str(src), "--latent-input", "a"], tmp_path / "o", capsys)
    assert rc == 2 and "cannot feed" in err and "'b'" in err


def test_onnx_dynamic_spatial_sizes_refused(tmp_path, capsys):
    g = dcgan(seed=3)  # fully convolutional: a (B, Z, h, w) noise map gives any image size
    axes = {"z": {0: "B", 2: "h", 3: "w"}, "img": {0: "B", 2: "H", 3: "W"}}
    src = export_user_onnx(
        tmp_path / "sp.onnx", g, (torch.zeros(2, 8, 2, 2),), ("z",), ("img",), dyn_axes=axes
    )
    rc, err = run_bad([str(src)], tmp_path / "o", capsys)
    assert rc == 2 and "dynamic spatial sizes" in err and "'z'" in err


def test_onnx_module_flags_refused(tmp_path, capsys):
    src = export_user_onnx(tmp_path / "u.onnx", dcgan(), (torch.zeros(2, 8, 1, 1),), ("z",))
    rc, err = run_bad([str(src), "--latent-shape", "8,1,1"], tmp_path / "o", capsys)
    assert rc == 2 and "--latent-shape applies to --module" in err
    rc, err = run_bad([str(src), "--latent-dim", "9"], tmp_path / "o", capsys)
    assert rc == 2 and "--latent-dim 9" in err and "Z = 8" in err


# ---------------------------------------------------------------- bench's torch baselines
def bench_json(bundle: Path, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "bench.json"
    argv = ["bench", str(bundle), "--batch", "1", "--iters", "5", "--warmup", "1", "--rounds", "1"]
    argv += ["--baselines", "torch", "--cold-runs", "0", "--precision", "fp32", "--json", str(out)]
    assert main([*argv, *extra]) == 0
    return json.loads(out.read_text())


def test_bench_runs_the_torch_baseline_of_a_user_module(user_files, tmp_path, capsys):
    bundle = tmp_path / "b"
    rc = main(
        [
            "export",
            "--module",
            f"{user_files['file']}:DCGAN",
            "--weights",
            str(user_files["pt"]),
            "--latent-dim",
            "8",
            "--latent-shape",
            "8,1,1",
            "--precision",
            "fp32",
            "--out",
            str(bundle),
            *FAST_FLAGS,
        ]
    )
    assert rc == 0
    report = bench_json(bundle, tmp_path)
    assert [r["kind"] for r in report["results"]] == ["runtime"]
    assert any("pass --module FILE.py:NAME" in n for n in report["notes"])
    module = ["--module", f"{user_files['file']}:DCGAN"]
    report = bench_json(bundle, tmp_path, *module, "--weights", str(user_files["pt"]))
    assert {r["kind"] for r in report["results"]} == {"runtime", "torch"}
    argv = ["bench", str(bundle), "--batch", "1", "--iters", "5", "--cold-runs", "0"]
    assert main([*argv, *module, "--weights", str(user_files["ckpt"])]) == 2  # asked, not run
    assert "not the file the bundle was exported from" in capsys.readouterr().err


def test_byo_flags_on_a_genedge_checkpoint_are_refused(ckpts, tmp_path, capsys):
    rc, err = run_bad([str(ckpts["gan"]), "--latent-dist", "uniform"], tmp_path / "o", capsys)
    assert rc == 2 and "--latent-dist apply to your own generator" in err


def test_onnx_uniform_prior(tmp_path):
    from genedge.export.options import ExportOptions
    from genedge.export.routes.source_onnx import OnnxSourceSpec, export_onnx_file
    from genedge.runtime import Sampler

    g = dcgan(seed=5)
    src = export_user_onnx(tmp_path / "u.onnx", g, (torch.zeros(2, 8, 1, 1),), ("x",))
    opts = ExportOptions(source=src, out=tmp_path / "b", precisions=("fp32",), **FAST)
    out = export_onnx_file(src, opts, OnnxSourceSpec(latent_dist="uniform"))
    z = np.random.default_rng(6).standard_normal((4, 8)).astype(np.float32)
    with torch.no_grad():
        u = torch.erf(torch.from_numpy(z) / np.sqrt(2.0)).reshape(-1, 8, 1, 1)
        want = as_uint8_nhwc(g(u).numpy())
    with Sampler.open(out, backend="ort-cpu", precision="fp32") as s:
        assert np.abs(s.sample_latents(z).astype(int) - want.astype(int)).max() <= 1


def test_onnx_output_outside_declared_range(tmp_path, capsys):
    src = export_user_onnx(tmp_path / "t.onnx", dcgan(seed=6), (torch.zeros(2, 8, 1, 1),), ("x",))
    rc, err = run_bad([str(src), "--output-range", "0,1"], tmp_path / "o", capsys)
    assert rc == 2 and "returned values in [-" in err and "[0, 1]" in err


def test_bench_quality_table_shows_the_export_speed_record(dcgan_bundle):
    from genedge.bench.quality import quality_rows
    from genedge.bench.report import _export_speed_text
    from genedge.manifest import read_manifest

    rows = {r["precision"]: r for r in quality_rows(read_manifest(dcgan_bundle[0]))}
    assert set(rows["int8"]["export_speed"]) == {"1", "16"}
    assert _export_speed_text(rows["fp32"]["export_speed"]) == "b1 1.00x, b16 1.00x"


def test_sample_says_why_auto_chose_its_precision(dcgan_bundle, tmp_path, capsys):
    assert main(["sample", str(dcgan_bundle[0]), "-n", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert "precision auto -> " in capsys.readouterr().err


def test_module_without_weights_is_refused_unless_none_is_said(user_files, tmp_path, capsys):
    argv = ["--module", f"{user_files['file']}:DCGAN", "--latent-dim", "8"]
    rc, err = run_bad([*argv, "--latent-shape", "8,1,1"], tmp_path / "o", capsys)
    assert rc == 2 and "--weights" in err and "untrained" in err


class Sig(torch.nn.Module):
    """A sigmoid generator: its images live in [0, 1]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 64)

    def forward(self, z):
        return torch.sigmoid(self.fc(z)).reshape(-1, 1, 8, 8)


def test_a_sigmoid_module_under_the_default_range_is_refused(tmp_path, capsys):
    from genedge.cli import build_parser
    from genedge.export.dispatch import spec_from_args
    from genedge.export.routes.byo import GeneratorSpec, probe_module

    with pytest.raises(Exception) as e:
        probe_module(Sig(), GeneratorSpec(latent_dim=8), "Sig")
    assert "only the upper half" in str(e.value) and "--output-range 0,1" in e.value.hint
    assert "--trust-output-range" in e.value.hint
    assert probe_module(Sig(), GeneratorSpec(latent_dim=8, output_range=(0.0, 1.0)), "Sig")
    trusting = GeneratorSpec(latent_dim=8, check_range=False)
    assert probe_module(Sig(), trusting, "Sig") == (1, 8, 8)  # the override
    args = build_parser().parse_args(
        [
            "export",
            "--module",
            "f.py:Sig",
            "--latent-dim",
            "8",
            "--out",
            "o",
            "--trust-output-range",
        ]
    )
    assert spec_from_args(args).check_range is False


def test_a_sigmoid_onnx_under_the_default_range_is_refused(tmp_path, capsys):
    src = export_user_onnx(tmp_path / "sig.onnx", Sig(), (torch.zeros(2, 8),), ("z",))
    rc, err = run_bad([str(src)], tmp_path / "o", capsys)
    assert rc == 2 and "only the upper half" in err and "[-1, 1]" in err
    assert "--output-range 0,1" in err and "--trust-output-range" in err
    out = tmp_path / "trusted"
    argv = [str(src), "--trust-output-range", "--precision", "fp32", "--out", str(out)]
    assert main(["export", *argv, *FAST_FLAGS]) == 0, capsys.readouterr().err
    assert "latent 'z' float32" in capsys.readouterr().err  # the matched tensors are said
