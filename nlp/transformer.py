"""The transformer backend: fine-tune and serve a local Hugging Face sequence-classification model.

``--base-model`` is a local directory (``save_pretrained`` output: config, weights, tokenizer);
nothing is fetched from the hub (``local_files_only``). The fine-tuned model and its tokenizer are
saved under ``<model dir>/hf``. torch and transformers are imported only when this backend is
used (``pip install '.[transformer]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HF_SUBDIR = "hf"


@dataclass
class TransformerParams:
    epochs: float = 3.0
    max_steps: int = 0
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    max_length: int = 256


def batched_logits(backend: Any, texts: Sequence[str], tensors: str, forward: Any) -> np.ndarray:
    """Tokenize ``texts`` in batches of ``backend.batch_size`` and stack ``forward(encoding)``;
    shared by the torch and onnxruntime backends."""
    out = []
    for i in range(0, len(texts), backend.batch_size):
        enc = backend.tokenizer(
            list(texts[i : i + backend.batch_size]),
            truncation=True,
            max_length=backend.max_length,
            padding=True,
            return_tensors=tensors,
        )
        out.append(forward(enc))
    if not out:
        return np.zeros((0, len(backend.labels)), dtype=np.float32)
    return np.concatenate(out)


class TransformerBackend:
    kind = "transformer"

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], max_length: int = 256, batch_size: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.batch_size = batch_size

    def logits(self, normalized: Sequence[str]) -> tuple[np.ndarray, None]:
        import torch

        self.model.eval()
        with torch.no_grad():
            return batched_logits(
                self, normalized, "pt", lambda enc: self.model(**enc).logits.float().cpu().numpy()
            ), None

    def top_features(self, ctx: Any, row: int, label_idx: int, k: int = 3) -> list[str]:
        return []

    def save(self, model_dir: Path) -> None:
        self.model.save_pretrained(model_dir / HF_SUBDIR)
        self.tokenizer.save_pretrained(model_dir / HF_SUBDIR)

    @classmethod
    def load(cls, model_dir: Path) -> TransformerBackend:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = model_dir / HF_SUBDIR
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        max_length = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        return cls(model, tokenizer, labels, max_length=min(max_length, 512))


def train_transformer(
    normalized: Sequence[str],
    y: np.ndarray,
    labels: list[str],
    base_model: str | Path | None,
    params: TransformerParams,
    *,
    seed: int = 0,
    progress: bool = False,
) -> TransformerBackend:
    if base_model is None:
        raise ValueError("the transformer backend needs a local base model directory (--base-model)")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_model),
        local_files_only=True,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={lb: i for i, lb in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    max_length = min(params.max_length, int(getattr(model.config, "max_position_embeddings", 512) or 512))
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    n = len(normalized)
    steps_per_epoch = max(1, -(-n // params.batch_size))
    total = params.max_steps or max(1, int(round(params.epochs * steps_per_epoch)))
    gen = torch.Generator().manual_seed(seed)
    target = torch.as_tensor(y, dtype=torch.long)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="fine-tune", unit="step")
    model.train()
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, params.batch_size):
            idx = order[i : i + params.batch_size]
            enc = tokenizer(
                [normalized[j] for j in idx.tolist()],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            loss = model(**enc, labels=target[idx]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=float(loss))
            if step >= total:
                break
    if bar is not None:
        bar.close()
    model.eval()
    return TransformerBackend(model, tokenizer, labels, max_length=max_length)
