"""A stand-in backend for the registry tests: ONNX Runtime CPU under another name.

It is what a new backend file looks like: a ``Backend`` (here ORT's, renamed) and one
``BackendSpec``; registering it is one line in ``runtime.registry.SPECS``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from genedge.runtime.backend import Backend, BackendSpec, OpenRequest
from genedge.runtime.ort_backend import OrtBackend, OrtOptions, ort_options

NAME = "ort-standin"


def _open(path: Any, precision: str, request: OpenRequest) -> Backend:
    b = OrtBackend.open(
        path,
        name="ort-cpu",
        precision=precision,
        options=ort_options(request.options, request),
        check_inputs=request.options.check_inputs,
        int_ranges=request.int_ranges,
    )
    b.info = dataclasses.replace(b.info, name=NAME)
    return b


SPEC = BackendSpec(
    name=NAME,
    open=_open,
    options_type=OrtOptions,
    make_options=ort_options,
    available=lambda: importlib.util.find_spec("onnxruntime") is not None,
    precisions=("fp32", "fp16", "int8"),
    prefer=("int8",),
)
