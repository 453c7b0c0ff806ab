"""ONNX export of a transformer model directory, and the onnxruntime backend that serves it on CPU.

``export_onnx(model_dir)`` traces ``<model dir>/hf`` with the TorchScript-based exporter of
``torch.onnx.export`` (``dynamo=False``: the dynamo exporter needs onnxscript, which the
``[transformer]`` extra does not install) into ``<model dir>/model.onnx``: inputs are the
tokenizer's ``model_input_names`` (``input_ids``, ``attention_mask`` and ``token_type_ids`` where
the model uses them), int64, with dynamic batch and sequence axes; the output is ``logits``. It
records the export in ``meta.json`` (``onnx``) and sets ``runtime: "onnx"`` so that
``load_classifier`` serves the directory with onnxruntime (``runtime="torch"`` overrides).
See https://pytorch.org/docs/stable/onnx_torchscript.html and
https://onnxruntime.ai/docs/api/python/api_summary.html.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .model import read_meta, write_meta
from .transformer import HF_SUBDIR

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17
_PROBE_TEXTS = ["路灯不亮了", "楼道里有很浓的煤气味，请尽快处理"]


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _input_names(tokenizer: Any, model: Any) -> list[str]:
    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    if "token_type_ids" in names and getattr(model.config, "type_vocab_size", 0) in (0, None):
        names.remove("token_type_ids")
    return names


def export_onnx(model_dir: str | Path, *, activate: bool = True, opset: int = OPSET) -> Path:
    """Export ``model_dir``'s fine-tuned model to ``model_dir/model.onnx``; returns that path.

    ``activate`` writes ``runtime: "onnx"`` to ``meta.json`` (served by onnxruntime from then on).
    The exported graph is checked against torch on two probe texts (``meta.onnx.max_abs_diff``).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if meta.get("backend") != "transformer":
        raise ValueError(f"{model_dir}: only transformer models export to ONNX (backend {meta.get('backend')!r})")
    hf = model_dir / HF_SUBDIR
    tokenizer = AutoTokenizer.from_pretrained(hf, local_files_only=True)
    # Eager attention traces to plain MatMul/Softmax; SDPA's masking path does not trace cleanly.
    model = AutoModelForSequenceClassification.from_pretrained(hf, local_files_only=True, attn_implementation="eager")
    model.eval()
    names = _input_names(tokenizer, model)
    enc = tokenizer(_PROBE_TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
    args = tuple(enc[n].to(torch.long) for n in names)

    class _Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    path = model_dir / ONNX_FILE
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    wrapper = _Logits().eval()  # a new module starts in training mode, and export restores the mode it found
    with torch.no_grad():
        expected = wrapper(*args).numpy()
    with warnings.catch_warnings():
        # Tracer and exporter deprecation notices are about the tracing itself (an offline step), not the graph.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
            )
    diff = None
    if onnx_available():
        got = OnnxBackend.open_session(path).run(["logits"], {n: a.numpy() for n, a in zip(names, args, strict=True)})
        diff = float(np.max(np.abs(got[0] - expected)))
    meta["onnx"] = {
        "file": ONNX_FILE,
        "inputs": names,
        "opset": opset,
        "torch": torch.__version__,
        "max_abs_diff": diff,
    }
    if activate:
        meta["runtime"] = "onnx"
    meta.pop("format", None)
    write_meta(model_dir, meta)
    log.info("onnx export", extra={"model_dir": str(model_dir), "inputs": names, "max_abs_diff": diff})
    return path


class OnnxBackend:
    """The transformer backend's logits from an onnxruntime session (CPU); torch runs no forward pass."""

    kind = "transformer"

    def __init__(self, session: Any, tokenizer: Any, labels: list[str], max_length: int = 256, batch_size: int = 32):
        self.session = session
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.batch_size = batch_size
        self.input_names = [i.name for i in session.get_inputs()]

    @staticmethod
    def open_session(path: Path) -> Any:
        import onnxruntime as ort

        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def logits(self, normalized: Sequence[str]) -> tuple[np.ndarray, None]:
        from .transformer import batched_logits

        def forward(enc: Any) -> np.ndarray:
            feed = {n: np.asarray(enc[n], dtype=np.int64) for n in self.input_names}
            return np.asarray(self.session.run(["logits"], feed)[0], dtype=np.float32)

        return batched_logits(self, normalized, "np", forward), None

    def top_features(self, ctx: Any, row: int, label_idx: int, k: int = 3) -> list[str]:
        return []

    def save(self, model_dir: Path) -> None:
        raise NotImplementedError("an ONNX-served model is saved by training and export_onnx")

    @classmethod
    def load(cls, model_dir: Path) -> OnnxBackend:
        from transformers import AutoConfig, AutoTokenizer

        hf = model_dir / HF_SUBDIR
        config = AutoConfig.from_pretrained(hf, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(hf, local_files_only=True)
        labels = [config.id2label[i] for i in range(config.num_labels)]
        max_length = int(getattr(config, "max_position_embeddings", 512) or 512)
        return cls(cls.open_session(model_dir / ONNX_FILE), tokenizer, labels, max_length=min(max_length, 512))
