"""ONNX export of a deployed model, and the onnxruntime parity check.

The exporter is torch's TorchScript-based one (``dynamo=False``): it traces the eval-mode
model once, is deterministic, and needs no ``onnxscript``. An op without a stock symbolic gets
the one its mixer declares (``Mixer.ONNX_SYMBOLICS``, registered for the export only): FNet's
``aten::fft_fft2`` and ``aten::real`` as ``DFT`` ops, whose ``axis`` is an attribute up to opset 19
and an input from opset 20, hence the opset range.

The batch axis is dynamic (``batch``); the token grid is fixed by the model (positions,
Linformer's sequence projection), so the input side is the model's ``img_size``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from .config import ConfigError
from .files import atomic_path
from .registry import get_mixer, list_mixers

OPSET = 17  # the lowest opset with DFT; the issue asks for 17 or newer
OPSETS = range(17, 20)  # DFT's axis attribute (see the module docstring)
INPUT, OUTPUT = "images", "logits"


@contextlib.contextmanager
def _mixer_symbolics(opset: int) -> Iterator[None]:
    """Register the symbolics the mixers declare (``Mixer.ONNX_SYMBOLICS``) for this export only."""
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    symbolics = {op: fn for name in list_mixers() for op, fn in get_mixer(name).ONNX_SYMBOLICS.items()}
    for op, fn in symbolics.items():
        register_custom_op_symbolic(op, fn, opset)
    try:
        yield
    finally:
        for op in symbolics:
            unregister_custom_op_symbolic(op, opset)


def export_onnx(model: nn.Module, path: str | Path, img_size: int, in_chans: int = 3, opset: int = OPSET) -> Path:
    """Trace ``model`` (eval mode; pass the deployed form) to an ONNX file, written atomically.

    Args:
        model: the module to export; it is put in eval mode for the trace and restored after.
        path: the ``.onnx`` file.
        img_size: the square input side the model was built for.
        in_chans: input channels.
        opset: ONNX opset, 17 to 19.
    """
    return export_onnx_module(model, torch.zeros(1, in_chans, img_size, img_size), path, opset)


def export_onnx_module(module: nn.Module, example: torch.Tensor, path: str | Path, opset: int = OPSET) -> Path:
    """Trace any one-input module on ``example`` (first axis dynamic) to ``path``; see ``export_onnx``."""
    model, x = module, example
    if opset not in OPSETS:
        raise ConfigError("--opset", f"{opset} is not supported (choose {OPSETS.start} to {OPSETS.stop - 1})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with atomic_path(path, mode=0o644) as tmp, _mixer_symbolics(opset), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(
                model,
                (x,),
                tmp,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads and sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def random_images(batch: int, in_chans: int, img_size: int, seed: int = 0) -> torch.Tensor:
    """Seeded standard-normal images (what a normalised input looks like)."""
    return torch.randn(batch, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def onnx_max_abs_diff(
    path: str | Path, model: nn.Module, img_size: int, in_chans: int = 3, batch: int = 2, seed: int = 0
) -> float:
    """Largest ``|onnxruntime - torch|`` over the logits of ``batch`` random images (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        x = random_images(batch, in_chans, img_size, seed)
        session = onnx_session(path)
        (out,) = session.run([OUTPUT], {INPUT: x.numpy()})
        return float((torch.from_numpy(out) - model(x)).abs().max())
    finally:
        model.train(was_training)
