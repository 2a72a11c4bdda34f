"""``lion tom``, ``lion tom-correlate``, ``lion embed``: training-set diversity, domain shift."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lion_nnunet.cliutils import (
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_processes,
)
from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

TOM_EXAMPLES = """
  lion phantoms --tracer fdg --cases 24 --out fdg_synth
  lion convert autopet --input fdg_synth/studies --organs fdg_synth/organs \\
       --metadata fdg_synth/cases.csv --tracer fdg --dataset-id 501 --name LION_FDG
  lion tom --dataset 501 --group-by disease center -o tom/
  lion tom --dataset 501 --splits $nnUNet_preprocessed/Dataset501_LION_FDG/lion_splits.csv -o tom/
  lion tom --labels labelsTr/ --images imagesTr/ --cases lion_cases.csv --tracer fdg -o tom/
"""
CORRELATE_EXAMPLES = """
  lion tom-correlate --tom tom/diversity.csv --eval models.csv --measure entropy -o tom/corr.png
  lion tom-correlate --tom tom/diversity.csv --pairs pairs.csv --eval-filter group=all \\
       --metric dice -o tom/correlation.png
"""
EMBED_EXAMPLES = """
  lion embed --images $nnUNet_raw/Dataset501_LION_FDG/imagesTr \\
       --cases $nnUNet_raw/Dataset501_LION_FDG/lion_cases.csv --weights dinov2_vits14.pth -o shift/
  lion embed --images imagesTs/ --cases lion_cases.csv --weights dinov2_vitb14_pretrain.pth \\
       --arch vit_base_patch14_dinov2 --img-size 518 --group-by scanner --device cuda -o shift/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to ``lion``."""
    p = add_command(
        subparsers, "tom", "Tumor Occurrence Maps and diversity measures of training sets",
        TOM_EXAMPLES,
        description=(
            "Map every case's tumor (label 1) into one anatomical body frame (organ landmarks "
            "along the body axis, body outline across it), accumulate Tumor Occurrence Maps per "
            "set and write coverage / entropy / lesion spread / regions hit (docs/tom.md)."
        ),
    )  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-d", "--dataset", help="nnU-Net raw dataset id or name (e.g. 501)")
    src.add_argument("--labels", type=Path, help="folder of LION label maps <case_id>.nii.gz")
    p.add_argument("--images", type=Path, help="PET folder <case_id>_0000.nii.gz (body outline)")
    p.add_argument("--cases", type=Path, help="cases CSV (default: the dataset's lion_cases.csv)")
    p.add_argument("--tracer", choices=("fdg", "psma"), help="label set of --labels maps")
    p.add_argument("--label-set", type=Path, help="label-set JSON of --labels maps")
    p.add_argument("--include-test", action="store_true", help="also map labelsTs/ cases")
    p.add_argument("--group-by", nargs="+", default=[], metavar="COL",
                   help="one set per value of these cases-CSV columns")  # fmt: skip
    p.add_argument("--splits", type=Path, help="lion_splits.csv: one set per (fold, subset_size)")
    p.add_argument("--sets", type=Path, help="CSV with columns set, case_id: your own sets")
    p.add_argument("--grid", nargs=3, type=int, default=[64, 32, 128], metavar=("NX", "NY", "NZ"),
                   help="TOM bins left-right, anterior-posterior, body axis")  # fmt: skip
    p.add_argument("--body-suv", type=float, default=0.3, help="PET body-outline threshold (SUV)")
    p.add_argument("--smooth-mm", type=float, default=30.0,
                   help="Gaussian sigma (mm) of the density whose entropy is reported")  # fmt: skip
    p.add_argument("--match-size", type=int, help="cases per equal-size subset (*_matched)")
    p.add_argument("--repeats", type=int, default=20, help="equal-size subsets per set")
    p.add_argument("--seed", type=int, default=0, help="seed of the equal-size subsets")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    add_processes(p)
    add_no_pbar(p)
    add_overwrite(p)
    add_json(p)
    p.set_defaults(func=_tom)

    c = add_command(
        subparsers, "tom-correlate",
        "Spearman correlation between a TOM diversity measure and model accuracy",
        CORRELATE_EXAMPLES,
    )  # fmt: skip
    c.add_argument("--tom", type=Path, required=True, help="diversity.csv of lion tom")
    c.add_argument("--eval", type=Path, help="table with a 'set' column and the metric per model")
    c.add_argument("--pairs", type=Path, help="CSV with columns set, eval (summary CSV per model)")
    c.add_argument("--eval-filter", action="append", default=[], metavar="COL=VALUE",
                   help="keep evaluation rows where COL == VALUE (repeatable)")  # fmt: skip
    c.add_argument("--measure", default="coverage", help="diversity.csv column, e.g. entropy")
    c.add_argument("--metric", default="dice", help="accuracy column, e.g. dice")
    c.add_argument("-o", "--out", type=Path, required=True, help="scatter plot PNG")
    add_json(c)
    c.set_defaults(func=_correlate)

    e = add_command(
        subparsers, "embed", "DINOv2 embeddings of PET MIPs: scanner/center domain shift",
        EMBED_EXAMPLES,
    )  # fmt: skip
    e.add_argument("--images", type=Path, required=True, help="folder of <case_id>_0000.nii.gz PET")
    e.add_argument("--cases", type=Path, required=True, help="cases CSV with case_id + groupings")
    e.add_argument("--weights", type=Path, required=True, help="local ViT weights (.pth)")
    e.add_argument("--arch", default="vit_small_patch14_dinov2", help="timm architecture")
    e.add_argument("--img-size", type=int, default=224, help="model input size (pixels)")
    e.add_argument("--group-by", nargs="+", default=["center", "scanner", "disease"],
                   metavar="COL", help="cases-CSV columns to colour and score by")  # fmt: skip
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    e.add_argument("--batch-size", type=int, default=16, help="cases per forward pass")
    e.add_argument("--suv-max", type=float, default=10.0, help="upper end of the SUV window")
    e.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    add_no_pbar(e)
    add_overwrite(e)
    add_json(e)
    e.set_defaults(func=_embed)


def _label_ids(args: argparse.Namespace, dataset_json: Path | None) -> dict[str, int]:
    from lion_nnunet.labels import resolve_label_set

    if args.tracer or args.label_set:
        return resolve_label_set(args.tracer, args.label_set).labels()
    if dataset_json is not None and dataset_json.is_file():
        return {k: int(v) for k, v in json.loads(dataset_json.read_text())["labels"].items()}
    log.warning("no organ labels known (give --tracer or --label-set): fallback body frame only")
    return {}


def _label_files(labels: Path, images: Path | None) -> list[tuple[str, Path, Path | None]]:
    if not labels.is_dir():
        raise LionError(f"{labels}: label folder not found")
    out = []
    for f in sorted(labels.glob("*.nii.gz")):
        cid = f.name[: -len(".nii.gz")]
        pet = images / f"{cid}_0000.nii.gz" if images is not None else None
        out.append((cid, f, pet if pet is not None and pet.is_file() else None))
    return out


def _tom(args: argparse.Namespace) -> int:
    import pandas as pd

    from lion_nnunet.analysis import tom
    from lion_nnunet.analysis.body_frame import FrameGrid

    if args.dataset is not None:
        from lion_nnunet.nnunet_env import find_dataset_name, require_folder

        folder = require_folder("nnUNet_raw") / find_dataset_name(args.dataset)
        cases = _label_files(folder / "labelsTr", folder / "imagesTr")
        if args.include_test and (folder / "labelsTs").is_dir():
            cases += _label_files(folder / "labelsTs", folder / "imagesTs")
        ids = _label_ids(args, folder / "dataset.json")
        cases_csv = args.cases or folder / "lion_cases.csv"
    else:
        cases = _label_files(args.labels, args.images)
        ids = _label_ids(args, args.labels.parent / "dataset.json")
        cases_csv = args.cases
    if not cases:
        raise LionError("no label maps <case_id>.nii.gz found")
    available = {c for c, _, _ in cases}
    sets: dict[str, list[str]] = {"all": sorted(available)}
    if args.group_by:
        if cases_csv is None or not Path(cases_csv).is_file():
            raise LionError(f"--group-by needs a cases CSV; {cases_csv or '--cases'} not found")
        table = pd.read_csv(cases_csv, dtype=str).fillna("")
        if "case_id" not in table.columns:
            raise LionError(f"{cases_csv}: no case_id column (columns: {', '.join(table.columns)})")
        table = table[table["case_id"].isin(available)]
        sets.update(tom.sets_from_columns(table, args.group_by, str(cases_csv)))
    if args.splits:
        sets.update(tom.sets_from_splits(args.splits))
    if args.sets:
        sets.update(tom.sets_from_table(args.sets))
    result = tom.run_tom(
        cases, sets, ids, args.out, grid=FrameGrid(tuple(args.grid)), body_suv=args.body_suv,
        smooth_mm=args.smooth_mm, match_size=args.match_size, repeats=args.repeats,
        seed=args.seed, num_processes=args.num_processes, overwrite=args.overwrite,
        progress=not args.no_pbar,
    )  # fmt: skip
    if args.json:
        print(result.diversity.to_json(orient="records", indent=2))
        return 0
    cols = ["set", "n_cases", "n_lesions", "coverage", "entropy", "lesion_spread_mm", "regions_hit"]
    print(result.diversity[cols].round(4).to_string(index=False))
    fallback = (result.frames["z_method"] != "landmarks").sum()
    if fallback:
        print(f"{fallback} case(s) use a fallback body frame (< 2 landmark organs): frames.csv")
    print(f"wrote {args.out}/diversity.csv and one .nii.gz + .png per set")
    return 0


def _correlate(args: argparse.Namespace) -> int:
    from lion_nnunet.analysis.tom_correlate import collect_metric, correlate

    accuracy = collect_metric(args.eval, args.pairs, args.metric, args.eval_filter)
    result = correlate(args.tom, accuracy, args.measure, args.metric, args.out)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"Spearman rho = {result['rho']:.3f}, p = {result['p']:.3g}, n = {result['n']} "
            f"({args.measure} vs {args.metric}); wrote {args.out}"
        )
    return 0


def _embed(args: argparse.Namespace) -> int:
    from lion_nnunet.analysis.embed import describe, embed_cohort

    result = embed_cohort(
        args.images, args.cases, args.weights, args.out, arch=args.arch, img_size=args.img_size,
        group_by=args.group_by, device=args.device, batch_size=args.batch_size,
        suv_max=args.suv_max, overwrite=args.overwrite, progress=not args.no_pbar,
    )  # fmt: skip
    if args.json:
        print(result.separation.to_json(orient="records", indent=2))
    else:
        print(describe(result))
    return 0
