"""Scanner domain shift: DINOv2 embeddings of PET maximum-intensity projections.

Per case, the coronal (max over anterior-posterior) and sagittal (max over left-right) MIPs of
the PET, SUV clipped to ``[0, suv_max]``, are scaled to [0, 1], fitted into a square of the
model's input size keeping the physical aspect ratio (head up), repeated to 3 channels and
ImageNet-normalized. A timm ViT (default ``vit_small_patch14_dinov2``) built without pretrained
weights is loaded from the user's local weights file (timm or official facebookresearch/dinov2
key layout, mapped by timm's ``checkpoint_filter_fn``); its pooled features of both views are
concatenated into the case's embedding. For projection and scores the embeddings are z-scored
per feature over the cohort and scaled to unit length (cosine geometry). Nothing is downloaded.

Array axis order: PET arrays are numpy (z, y, x) after reorientation to LPS; MIP images are
(rows = head to feet, columns).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lion_nnunet.analysis.body_frame import orient_lps
from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path, image_to_array, read_image, write_csv, write_json
from lion_nnunet.progress import track

log = logging.getLogger(__name__)

DEFAULT_ARCH = "vit_small_patch14_dinov2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pet_mips(pet_path: Path, suv_max: float, size: int) -> np.ndarray:
    """Coronal and sagittal MIPs of a PET as a model input, float32 (2, 3, size, size).

    Args:
        pet_path: PET image in SUV.
        suv_max: upper end of the SUV window (values are clipped to [0, suv_max]).
        size: model input size in pixels (square).
    """
    import torch
    import torch.nn.functional as F

    image = orient_lps(read_image(pet_path, "PET"))
    pet = np.clip(np.nan_to_num(image_to_array(image).astype(np.float32)), 0, suv_max) / suv_max
    sx, sy, sz = image.GetSpacing()
    views = [(pet.max(axis=1)[::-1], sz, sx), (pet.max(axis=2)[::-1], sz, sy)]  # head up
    out = np.zeros((2, 3, size, size), dtype=np.float32)
    for i, (mip, row_mm, col_mm) in enumerate(views):
        h_mm, w_mm = mip.shape[0] * row_mm, mip.shape[1] * col_mm
        scale = size / max(h_mm, w_mm)
        h, w = max(1, round(h_mm * scale)), max(1, round(w_mm * scale))
        t = torch.from_numpy(np.ascontiguousarray(mip))[None, None]
        t = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        top, left = (size - h) // 2, (size - w) // 2
        out[i, :, top : top + h, left : left + w] = t[0, 0].clamp(0, 1).numpy()
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)[None, :, None, None]
    std = np.array(IMAGENET_STD, dtype=np.float32)[None, :, None, None]
    return (out - mean) / std


def _unwrap(state: object, weights: Path) -> dict:
    if not isinstance(state, dict):
        raise LionError(f"{weights}: expected a state dict (tensors by name), got {type(state)}")
    for key in ("model", "state_dict", "teacher"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
    prefix = "backbone."  # DINOv2 training checkpoints: teacher.backbone.*
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def load_model(arch: str, weights: str | Path, img_size: int, device: str = "cpu"):
    """A timm ViT with the user's weights, in eval mode on ``device``; pooled-feature output.

    Raises:
        LionError: unknown architecture, unreadable file, or weights of another architecture.
    """
    import timm
    import torch

    weights = Path(weights)
    if not weights.is_file():
        raise LionError(f"{weights}: weights file not found; pass a local .pth/.pt file")
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size)
    except (RuntimeError, TypeError) as e:
        hint = ", ".join(timm.list_models("*dinov2*")[:6])
        raise LionError(f"--arch {arch}: cannot build this timm model ({e}); e.g. {hint}") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise LionError(f"{weights}: cannot read the weights ({type(e).__name__}: {e})") from None
    state = _unwrap(state, weights)
    own = model.state_dict()
    try:
        from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

        if isinstance(model, VisionTransformer):
            state = checkpoint_filter_fn(state, model)
    except (RuntimeError, ValueError, KeyError, IndexError) as e:
        raise LionError(
            f"{weights}: the weights do not fit {arch} ({type(e).__name__}: {e}); pass the "
            "--arch the file was saved from"
        ) from None
    state = {k: v for k, v in state.items() if not (k.startswith("head.") and k not in own)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        details = []
        if shapes:
            details.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[0]}")
        if missing:
            details.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise LionError(
            f"{weights}: the weights are for another architecture than --arch {arch} "
            f"({'; '.join(details)}); pass the --arch the file was saved from (dinov2_vits14 -> "
            "vit_small_patch14_dinov2, dinov2_vitb14 -> vit_base_patch14_dinov2)"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LionError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return device


@dataclass
class EmbedResult:
    out_dir: Path
    table: pd.DataFrame  # case_id, grouping columns, pca1, pca2 (, umap1, umap2)
    embeddings: np.ndarray  # (cases, 2 * feature dim): coronal then sagittal features
    separation: pd.DataFrame


def _cases(images: Path, cases_csv: Path, group_by: Sequence[str]) -> pd.DataFrame:
    if not cases_csv.is_file():
        raise LionError(f"{cases_csv}: cases CSV not found")
    table = pd.read_csv(cases_csv, dtype=str).fillna("")
    missing = [c for c in ("case_id", *group_by) if c not in table.columns]
    if missing:
        raise LionError(
            f"{cases_csv}: no column(s) {', '.join(missing)} to group by (columns: "
            f"{', '.join(table.columns)}); choose --group-by from these"
        )
    if not images.is_dir():
        raise LionError(f"{images}: images folder not found")
    table["image"] = [str(images / f"{c}_0000.nii.gz") for c in table["case_id"]]
    has = table["image"].map(lambda p: Path(p).is_file())
    if not has.any():
        raise LionError(
            f"{images}: none of the {len(table)} cases of {cases_csv} has an image "
            "<case_id>_0000.nii.gz here"
        )
    if (~has).any():
        log.warning(
            "%d case(s) of %s have no image in %s (e.g. %s); embedding the other %d",
            int((~has).sum()), cases_csv, images, table["case_id"][~has].iloc[0], int(has.sum()),
        )  # fmt: skip
    listed = set(table["case_id"])
    extra = [p.name for p in images.glob("*_0000.nii.gz") if p.name[:-12] not in listed]
    if extra:
        log.warning("%d image(s) in %s are not in %s: skipped", len(extra), images, cases_csv)
    return table[has].reset_index(drop=True)


def separation_scores(embeddings: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict:
    """Silhouette (cosine) and cross-validated k-NN accuracy of one grouping of the cases."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    labels = np.asarray(labels)
    groups, counts = np.unique(labels, return_counts=True)
    row = {
        "n_cases": len(labels), "n_groups": len(groups), "silhouette": np.nan,
        "knn_accuracy": np.nan, "chance_accuracy": float(counts.max() / counts.sum()),
        "knn_k": np.nan, "cv_folds": np.nan, "note": "",
    }  # fmt: skip
    if len(groups) < 2:
        row["note"] = "one group only"
        return row
    if len(groups) < len(labels):
        row["silhouette"] = float(silhouette_score(embeddings, labels, metric="cosine"))
    folds = int(min(5, counts.min()))
    if folds < 2:
        row["note"] = "a group has one case: no cross-validated k-NN"
        return row
    k = int(max(1, min(5, (len(labels) * (folds - 1)) // folds // len(groups))))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine")
    row.update(
        knn_accuracy=float(cross_val_score(knn, embeddings, labels, cv=cv).mean()),
        knn_k=k,
        cv_folds=folds,
    )
    return row


def _signature(arch: str, weights: Path, img_size: int, suv_max: float) -> str:
    st = weights.stat()
    text = f"{arch}|{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}|{img_size}|{suv_max}"
    return hashlib.sha1(text.encode()).hexdigest()


def _features(model, batch: np.ndarray, device: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(batch).to(device)
        return model(x).float().cpu().numpy()


def embed_cohort(
    images: str | Path,
    cases_csv: str | Path,
    weights: str | Path,
    out_dir: str | Path,
    arch: str = DEFAULT_ARCH,
    img_size: int = 224,
    group_by: Sequence[str] = ("center", "scanner", "disease"),
    device: str = "auto",
    batch_size: int = 16,
    suv_max: float = 10.0,
    overwrite: bool = False,
    progress: bool = True,
    seed: int = 0,
) -> EmbedResult:
    """Embed every case's PET MIPs, project to 2D and score how well groups separate.

    Writes to ``out_dir``: ``embeddings.npz`` (case_id, embedding; reused on a re-run with the
    same model settings unless ``overwrite``), ``embeddings.csv`` (case_id, grouping columns,
    pca1, pca2, and umap1, umap2 when ``umap`` is installed), ``pca_<column>.png`` (and
    ``umap_<column>.png``) per grouping column, ``separation.csv`` and ``shift.json``.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler, normalize

    images, cases_csv, weights = Path(images), Path(cases_csv), Path(weights)
    out = Path(out_dir)
    table = _cases(images, cases_csv, group_by)
    if batch_size < 1:
        raise LionError(f"--batch-size must be at least 1, got {batch_size}")
    device = resolve_device(device)
    model = load_model(arch, weights, img_size, device)
    signature = _signature(arch, weights, img_size, suv_max)
    cached: dict[str, np.ndarray] = {}
    cache_file = out / "embeddings.npz"
    if cache_file.is_file() and not overwrite:
        with np.load(cache_file, allow_pickle=False) as z:
            if str(z["signature"]) == signature:
                cached = dict(zip(z["case_id"].tolist(), z["embedding"], strict=True))
    todo = [i for i, c in enumerate(table["case_id"]) if c not in cached]
    if cached:
        log.info("%d case(s) embedded before; computing %d", len(table) - len(todo), len(todo))
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if pending:
            feats = _features(model, np.concatenate([m for _, m in pending]), device)
            for j, (cid, _) in enumerate(pending):
                cached[cid] = feats[2 * j : 2 * j + 2].reshape(-1)
            pending.clear()

    for i in track(todo, "embed", len(todo), progress):
        pending.append((table["case_id"][i], pet_mips(Path(table["image"][i]), suv_max, img_size)))
        if len(pending) >= batch_size:
            flush()
    flush()
    ids = table["case_id"].tolist()
    emb = np.stack([cached[c] for c in ids]).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_file) as tmp, tmp.open("wb") as fh:
        np.savez(fh, case_id=np.array(ids), embedding=emb, signature=signature)

    # z-score each feature over the cohort (removes the component all MIPs share), then unit
    # length: PCA, UMAP and the scores all work in this cosine geometry.
    unit = normalize(StandardScaler().fit_transform(emb.astype(np.float64)))
    coords = table[["case_id", *group_by]].copy()
    pca = PCA(n_components=2, random_state=seed).fit(unit) if len(ids) >= 2 else None
    xy = pca.transform(unit) if pca is not None else np.zeros((len(ids), 2))
    coords["pca1"], coords["pca2"] = xy[:, 0], xy[:, 1]
    projections = {"pca": xy}
    try:
        import umap  # optional
    except ImportError:
        umap = None
    if umap is not None and len(ids) >= 4:
        uv = umap.UMAP(n_neighbors=min(15, len(ids) - 1), random_state=seed).fit_transform(unit)
        coords["umap1"], coords["umap2"] = uv[:, 0], uv[:, 1]
        projections["umap"] = uv
    rows = []
    for col in group_by:
        rows.append({"grouping": col, **separation_scores(unit, table[col].tolist(), seed)})
        for name, points in projections.items():
            _scatter(points, table[col].tolist(), name, col, out / f"{name}_{col}.png")
    separation = pd.DataFrame(rows)
    write_csv(coords, out / "embeddings.csv")
    write_csv(separation, out / "separation.csv")
    summary = {
        "arch": arch, "weights": str(weights), "img_size": img_size, "suv_max": suv_max,
        "device": device, "cases": len(ids), "embedding_dim": int(emb.shape[1]),
        "pca_explained_variance": pca.explained_variance_ratio_.tolist() if pca else [],
        "umap": "umap" in projections,
        "separation": separation.to_dict(orient="records"),
    }  # fmt: skip
    write_json(summary, out / "shift.json")
    return EmbedResult(out, coords, emb, separation)


def _scatter(points: np.ndarray, labels: list[str], method: str, column: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for value in sorted(set(labels)):
        sel = np.array([lab == value for lab in labels])
        ax.scatter(points[sel, 0], points[sel, 1], s=18, alpha=0.8, label=f"{value} ({sel.sum()})")
    ax.legend(fontsize=7, title=column, title_fontsize=8)
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.set_title(f"PET MIP embeddings by {column}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def describe(result: EmbedResult) -> str:
    """One line per grouping for the terminal."""
    lines = []
    for r in result.separation.to_dict(orient="records"):
        lines.append(
            f"{r['grouping']}: {r['n_groups']} groups, silhouette {r['silhouette']:.3f}, "
            f"k-NN accuracy {r['knn_accuracy']:.3f} (chance {r['chance_accuracy']:.3f})"
            + (f" [{r['note']}]" if r["note"] else "")
        )
    return "\n".join(lines) + f"\nwrote {result.out_dir}/embeddings.csv, separation.csv"
