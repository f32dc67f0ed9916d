"""Semantic directions in the generator's latent space, learned offline.

Supervised (InterFaceGAN): sample latents, score each generated face with an offline
attribute scorer (`tools.gan.attributes`: a Haar cascade for smile, a probe fitted on
hand-labelled faces for eyeglasses, pixel statistics for lighting, skin warmth, hair
darkness and background), take the top and bottom quarter as positives and negatives,
fit a linear boundary (L2 logistic regression); its unit normal is the direction.
Conditional: each direction projected orthogonal to the other five, so "more smile"
moves the other attributes less.
Unsupervised (GANSpace): PCA of the first block's activations, each component
regressed back to a latent direction.

Every direction carries its measured accuracy: the boundary's held-out classification
accuracy, and how often an edit at `EDIT_STRENGTH` moves its own scorer the right way
on held-out latents (fresh seeds). Shipped as `data/directions-dcgan.json`; recompute
with `imagent gan directions --recompute`.
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tools.gan.attributes import logistic, probe_info, score_faces
from tools.gan.backends import Backend
from tools.registry import ToolError

DIRECTIONS_FILE = Path(__file__).parent / "data" / "directions-dcgan.json"
ATTRIBUTES = ("smile", "eyeglasses", "lighting", "warmth", "hair_darkness", "background")
PCA_COMPONENTS = 5
EDIT_STRENGTH = 3.0
# Share of the latents taken as positives and as negatives. About 13% of generated faces
# wear glasses, so eyeglasses takes its clearest 15% each way (measured: 90% of edits move
# the probe the right way, against 86% with quartiles).
QUANTILE = {"eyeglasses": 0.15}
FIT_SEED = 20_000_000  # fitting latents; held-out ones use FIT_SEED + 1; tests use small seeds


# ----------------------------------------------------------------- fitting


def _render_scores(backend: Backend, z: Tensor, batch: int = 256) -> dict[str, np.ndarray]:
    parts: list[dict[str, np.ndarray]] = []
    with torch.no_grad():
        for i in range(0, len(z), batch):
            parts.append(score_faces(backend.synthesize(z[i : i + batch]).cpu()))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _orthogonal_to(v: np.ndarray, others: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(others.T)
    u = v - q @ (q.T @ v)
    return u / np.linalg.norm(u)


def fit(backend: Backend, n: int = 4000, n_test: int = 300, quantile: float = 0.25,
        log: Any = print) -> dict[str, Any]:
    """Fit all directions for `backend`; returns the JSON-ready record (with measured accuracy)."""
    t0 = time.monotonic()
    z = backend.random_latents(n, FIT_SEED).cpu()
    log(f"scoring {n} generated faces ...")
    scores = _render_scores(backend, z)
    rng = np.random.default_rng(0)
    zn = z.numpy().astype(np.float64)
    vectors: dict[str, np.ndarray] = {}
    record: dict[str, Any] = {}
    for attr in ATTRIBUTES:
        s = scores[attr]
        q = QUANTILE.get(attr, quantile)
        lo, hi = np.quantile(s, q), np.quantile(s, 1 - q)
        idx = np.flatnonzero((s <= lo) | (s >= hi))
        rng.shuffle(idx)
        cut = int(0.7 * len(idx))
        tr, va = idx[:cut], idx[cut:]
        wb = logistic(zn[tr], (s[tr] >= hi).astype(float))
        acc = float((((zn[va] @ wb[:-1] + wb[-1]) > 0) == (s[va] >= hi)).mean())
        vectors[attr] = wb[:-1] / np.linalg.norm(wb[:-1])
        record[attr] = {"kind": "interfacegan", "attribute": attr, "boundary_accuracy": round(acc, 3),
                        "labelled_share": 2 * q, "score_std": round(float(s.std()), 4)}
        if attr == "eyeglasses":
            record[attr]["scorer"] = {"kind": "probe on hand-labelled faces", **probe_info()}
        log(f"{attr}: boundary accuracy {acc:.3f} on {len(va)} held-out latents")
    stack = np.stack([vectors[a] for a in ATTRIBUTES])
    conditional = {a: _orthogonal_to(vectors[a], np.stack([vectors[b] for b in ATTRIBUTES if b != a]))
                   for a in ATTRIBUTES}

    if hasattr(backend, "features"):
        with torch.no_grad():
            feats = torch.cat([backend.features(z[i : i + 512]).cpu() for i in range(0, n, 512)]).double()
        feats = feats - feats.mean(0)
        _, sv, v = torch.pca_lowrank(feats, q=PCA_COMPONENTS + 5, center=False)
        coords = (feats @ v[:, :PCA_COMPONENTS]).numpy()
        coords /= coords.std(0)
        u = np.linalg.lstsq(coords, zn, rcond=None)[0]
        total = float((feats**2).sum())
        for k in range(PCA_COMPONENTS):
            vectors[f"pca{k}"] = u[k] / np.linalg.norm(u[k])
            record[f"pca{k}"] = {"kind": "ganspace", "attribute": None,
                                 "explained_variance": round(float(sv[k] ** 2) / total, 4)}

    log(f"measuring edits on {n_test} held-out latents at strength {EDIT_STRENGTH} ...")
    zt = backend.random_latents(n_test, FIT_SEED + 1).cpu().double().numpy()
    base = _render_scores(backend, torch.tensor(zt, dtype=torch.float32))
    std = {a: float(scores[a].std()) or 1.0 for a in ATTRIBUTES}
    for attr in ATTRIBUTES:
        for label, vec in (("unconditional", vectors[attr]), ("conditional", conditional[attr])):
            moved = _render_scores(backend, torch.tensor(zt + EDIT_STRENGTH * vec, dtype=torch.float32))
            right = float((moved[attr] > base[attr]).mean())
            others = {b: round(float(np.abs(moved[b] - base[b]).mean()) / std[b], 3) for b in ATTRIBUTES if b != attr}
            own = round(float((moved[attr] - base[attr]).mean()) / std[attr], 3)
            record[attr][label] = {"edit_accuracy": round(right, 3), "own_change_std": own,
                                   "other_change_std": others,
                                   "other_change_mean": round(float(np.mean(list(others.values()))), 3)}
            log(f"{attr} ({label}): right way on {right:.0%}, own change {own:+.2f} std, "
                f"others {np.mean(list(others.values())):.2f} std")
    for name, vec in vectors.items():
        record[name]["vector"] = [round(float(v), 6) for v in vec]
        if name in conditional:
            record[name]["conditional_vector"] = [round(float(v), 6) for v in conditional[name]]
    return {
        "imagent_directions": 1,
        "generator": backend.name,
        "latent_dim": backend.latent_dim,
        "edit_strength": EDIT_STRENGTH,
        "fit": {"samples": n, "held_out": n_test, "quantile": quantile, "seed": FIT_SEED,
                "seconds": round(time.monotonic() - t0, 1),
                "overlap_cosine": np.round(stack @ stack.T, 3).tolist()},
        "directions": record,
    }


def save(record: dict[str, Any], path: Path = DIRECTIONS_FILE) -> Path:
    from tools.io import atomic_write_bytes

    load.cache_clear()
    return atomic_write_bytes(path, json.dumps(record, indent=1).encode())


@cache
def load(path: Path = DIRECTIONS_FILE) -> dict[str, Any]:
    if not path.is_file():
        raise ToolError(f"no direction file at {path}; run `imagent gan directions --recompute`")
    data = json.loads(path.read_text())
    if data.get("imagent_directions") != 1:
        raise ToolError(f"{path} is not an imagent directions file")
    return data


def names() -> list[str]:
    return list(ATTRIBUTES) + [f"pca{k}" for k in range(PCA_COMPONENTS)]


def vector(name: str, backend: Backend, conditional: bool = True) -> Tensor:
    """The unit direction `name` for `backend` (conditional version when there is one)."""
    data = load()
    if backend.name != data["generator"] or backend.latent_dim != data["latent_dim"]:
        raise ToolError(f"the shipped directions are for the {data['generator']} generator, not {backend.name}; "
                        "fit directions for it with `imagent gan directions --recompute`")
    entry = data["directions"].get(name)
    if entry is None:
        raise ToolError(f"unknown direction {name!r}; known: {', '.join(data['directions'])}")
    vec = entry.get("conditional_vector") if conditional and "conditional_vector" in entry else entry["vector"]
    return torch.tensor(vec, dtype=torch.float32, device=backend.device)
