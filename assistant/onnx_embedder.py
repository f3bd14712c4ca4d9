"""The offers' bulk embedder: all-MiniLM-L6-v2 as an int8 ONNX model run by ONNX Runtime.

On our offer texts (about 77 tokens) and 2 cores it embeds more texts per CPU second than
torch's dynamic int8 model and stays closer to the float model's vectors (cosine 0.994 against
0.980), which is what hybrid recall depends on (bench/RESULTS.md, issue 10). There is no ONNX
file in the model package, and the hub is never reached: the float model is exported from the
package's weights with torch's exporter and quantized per output channel by ONNX Runtime's
quantization tool, once per machine, into `cache_dir` (about 20 s; later loads take a moment).

Tokenization is the model's own tokenizer.json (Hugging Face `tokenizers`), pooling is the mean
over real tokens as in the model's 1_Pooling config, and vectors are L2-normalised: the same
recipe sentence-transformers runs, so only the arithmetic of the linear layers differs.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

REQUIRED_MODULES: Final = ("onnxruntime", "onnx")
MAX_TOKENS: Final = 256  # the model's max_seq_length (sentence_bert_config.json)
# Batches of 8 texts sorted by length: least padding, and the int8 kernels' working set stays
# in cache (8 did ~20% more texts per CPU second than 32 on our texts).
DEFAULT_BATCH_SIZE: Final = 8
INPUTS: Final = ("input_ids", "attention_mask", "token_type_ids")


def onnx_available() -> bool:
    """Whether ONNX Runtime and onnx (for the one-time quantization) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED_MODULES)


def export_quantized(model_dir: Path, target: Path) -> Path:
    """Write the int8 ONNX model of the transformer in `model_dir` to `target` (atomically, so a
    concurrent load never reads half a file)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        """Keyword arguments for the model (its positional ones changed in transformers 5)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    model = LastHiddenState(AutoModel.from_pretrained(str(model_dir)).eval())
    sample = torch.ones(2, 16, dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        float_path = Path(work) / "model.onnx"
        int8_path = Path(work) / "model.int8.onnx"
        with warnings.catch_warnings(), torch.inference_mode():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
            # onnxscript (not installed); it exports this plain BERT exactly.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (sample, sample, torch.zeros_like(sample)),
                str(float_path),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        quantize_dynamic(float_path, int8_path, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(int8_path, target)
    return target


class OnnxEmbedder:
    """Batches of offer texts through the int8 ONNX model on `threads` CPU threads."""

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        model_id: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        self.model_id = model_id
        self.batch_size = batch_size
        self.dimensions = int(self._session.get_outputs()[0].shape[-1])

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors in input order; texts are batched by token count to pad little."""
        import numpy as np

        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)  # 0 is [PAD]
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            [hidden] = self._session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
            vectors[batch] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """One text's vector (the site embeds requests with the float model instead)."""
        return self.embed_documents([text])[0]
