"""Standalone OpenVINO on the bundle's own ONNX files: what a user gets from
``openvino.Core().compile_model`` without genedge (never genedge's ``openvino`` backend).

The model is read once (load time) and, per batch size, reshaped to that static batch and
compiled for the CPU with the bench's thread count: OpenVINO's fast path, so the baseline is
OpenVINO at its best, not a strawman. The timed call is ``InferRequest.infer`` with shared
input and output memory (no copies). Precision: the fp32 file runs with
``INFERENCE_PRECISION_HINT=f32`` (on CPUs with bf16 OpenVINO would otherwise pick bf16
silently); ``bf16`` is the same fp32 file with the hint ``bf16``, measured only where the
CPU reports BF16; the fp16 and Q/DQ int8 files run with OpenVINO's defaults.

``openvino`` is imported in ``preload`` only; without it the cases become a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genedge.interrupts import roomy_signal_stack

from .cases import Inputs, SkipCase
from .timer import Call, time_once

HINTS = {"fp32": "f32", "bf16": "bf16"}  # precision -> INFERENCE_PRECISION_HINT


@dataclass
class OpenVinoTarget:
    """``openvino.Core().compile_model`` on ``path`` for the CPU, static shape per batch."""

    path: Path
    precision: str
    threads: int | None
    kind: str = "openvino"
    backend: str = "openvino"
    info: dict[str, Any] = field(default_factory=dict)
    compile_ms: dict[int, float] = field(default_factory=dict)
    _ov: Any = None
    _core: Any = None
    _model: Any = None
    _requests: list[Any] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"openvino {self.precision} (standalone)"

    def preload(self) -> None:
        try:
            import openvino
        except ImportError as e:
            raise SkipCase(
                "the openvino package is not installed (pip install 'genedge[openvino]')"
            ) from e
        self._ov = openvino

    def open(self) -> None:
        self._core = self._ov.Core()
        if self.precision == "bf16" and "BF16" not in self.capabilities():
            raise SkipCase("this CPU has no bf16 support (OpenVINO reports no BF16 capability)")
        self._model = self._core.read_model(str(self.path))
        self.info = {"openvino": self._ov.get_version(), "config": self.config()}

    def capabilities(self) -> list[str]:
        return list(self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))

    def config(self) -> dict[str, Any]:
        # unpinned, as genedge's openvino backend runs: pinning threads to cores costs up to
        # 10x on a shared machine, and the comparison is meant to be like for like
        config: dict[str, Any] = {"ENABLE_CPU_PINNING": "NO"}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.precision in HINTS:
            config["INFERENCE_PRECISION_HINT"] = HINTS[self.precision]
        return config

    def prepare(self, inputs: Inputs) -> Call:
        model = self._model.clone()
        names = [p.get_any_name() for p in model.inputs]
        feed: dict[str, np.ndarray] = {names[0]: inputs.z}
        if len(names) > 1:
            if inputs.labels is None:
                raise SkipCase(f"{self.path.name} has inputs {names}; expected only the latent")
            feed[names[1]] = inputs.labels
        model.reshape({n: list(a.shape) for n, a in feed.items()})
        compiled, ns = time_once(lambda: self._core.compile_model(model, "CPU", self.config()))
        roomy_signal_stack()  # the plugin's own signal stack is too small for Ctrl-C
        self.compile_ms[inputs.batch] = ns / 1e6
        request = compiled.create_infer_request()
        self._requests.append(request)
        return lambda: request.infer(feed, share_inputs=True, share_outputs=True)

    def case_info(self, batch: int) -> dict[str, Any]:
        return {"compile_ms": self.compile_ms[batch]} if batch in self.compile_ms else {}

    def close(self) -> None:
        self._requests.clear()
        self._model = self._core = None
