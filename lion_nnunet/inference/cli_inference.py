"""``lion predict`` and ``lion postprocess``."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import (
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_sharding,
    add_tracer,
    log_to,
)

PREDICT_EXAMPLES = """\
  lion predict -i $nnUNet_raw/Dataset501_LION_FDG/imagesTs -o out/ \\
       -m $nnUNet_results/Dataset501_LION_FDG/nnUNetTrainer_LION__LIONPlans__3d_fullres \\
       -f 0 1 2 3 4 --device cuda
  lion predict -i study/SUV.nii.gz -o out/ -m MODEL -f all --device cpu --disable-tta
  lion predict -i dicom_root/ -o out/ -m MODEL -f 0 --dicom-seg      # PET series -> SUV
  lion predict -i cases.csv -o out/ -m MODEL --num-parts 4 --part-id 0   # columns case_id,pet
  lion predict -i subjects/ -o out/ -m fdg --suv-threshold 2.5 --rotating-mip
       # lionz habits: <subject>/PT_*.nii.gz or DICOM, an installed model by name, -t, -g
"""

POSTPROCESS_EXAMPLES = """\
  nnUNetv2_predict -i imagesTs -o nnunet_pred -d 501 -c 3d_fullres -p LIONPlans \\
       -tr nnUNetTrainer_LION -f 0
  lion postprocess -i nnunet_pred/ --pet imagesTs/ -o out/          # labels from its dataset.json
  lion postprocess -i nnunet_pred/ --pet imagesTs/ -o out/ --tracer fdg \\
       --min-volume-ml 0.5 --remove-in-organ urinary_bladder
  lion postprocess -i lionz_pred/ --pet imagesTs/ -o out/ \\
       --dataset-json Dataset711_PSMA/nnUNetTrainer__nnUNetPlans__3d_fullres/dataset.json
"""


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-volume-ml", type=float, default=0.0,
        help="drop tumor components smaller than this (ml); 0 keeps all",
    )  # fmt: skip
    p.add_argument(
        "--remove-in-organ", nargs="+", default=[], metavar="ORGAN",
        help="drop tumor components inside or touching these organ classes (off by default)",
    )  # fmt: skip
    p.add_argument("--save-organs", action="store_true", help="also write organs.nii.gz")
    p.add_argument(
        "--tumor-label", type=int, default=None, metavar="N",
        help="the tumor's label id (default: the class named tumor/lesion in dataset.json)",
    )  # fmt: skip
    p.add_argument(
        "--suv-threshold", type=float, default=None, metavar="SUV",
        help="drop tumor voxels below this SUV (lionz's -t; fixed-threshold practice, e.g. 2.5)",
    )  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to ``lion``."""
    p = add_command(
        subparsers, "predict",
        "segment tumors in PET (NIfTI folder/file, CSV or DICOM) with a trained LION model",
        PREDICT_EXAMPLES,
    )  # fmt: skip
    p.add_argument("-i", "--input", required=True, help="folder, CSV, image file or DICOM root")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("-m", "--model", required=True,
                   help="installed model name (lion models list) or <Trainer>__<Plans>__<config> "
                   "folder (or its DatasetXXX folder)")  # fmt: skip
    p.add_argument("-f", "--folds", nargs="+", default=None,
                   help="folds to ensemble (default: all folds with a checkpoint)")  # fmt: skip
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="auto: CUDA, else Apple MPS, else CPU")  # fmt: skip
    p.add_argument("--disable-tta", action="store_true", help="no test-time mirroring (faster)")
    p.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name")
    p.add_argument("--dicom-seg", action="store_true",
                   help="also write seg.dcm (DICOM-SEG referencing the PET series)")  # fmt: skip
    p.add_argument("--rotating-mip", action="store_true",
                   help="also write mip_rotating.gif (rotating PET MIP, tumor in red)")  # fmt: skip
    _add_filters(p)
    add_sharding(p)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run_predict)
    log_to(p, "output")

    p = add_command(
        subparsers, "postprocess",
        "turn stock nnUNetv2_predict label maps into tumor masks, reports and pictures",
        POSTPROCESS_EXAMPLES,
    )  # fmt: skip
    p.add_argument("-i", "--input", required=True, help="nnUNetv2_predict output folder")
    p.add_argument("--pet", required=True, help="folder with the PET inputs (<case>_0000)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    add_tracer(p, required=False)
    p.add_argument("--dataset-json", default=None,
                   help="dataset.json giving the labels (default: the one in -i)")  # fmt: skip
    _add_filters(p)
    add_sharding(p)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run_postprocess)
    log_to(p, "output")


def run_predict(args: argparse.Namespace) -> int:
    from lion_nnunet.nnunet_env import apply_cpu_friendly_defaults

    from .model import check_model_folder
    from .options import PredictOptions
    from .predict import discover_cases, predict_cases

    apply_cpu_friendly_defaults()
    options = PredictOptions(
        folds=args.folds, checkpoint=args.checkpoint, tumor_label=args.tumor_label,
        device=args.device, use_mirroring=not args.disable_tta,
        min_volume_ml=args.min_volume_ml, remove_in_organs=args.remove_in_organ,
        suv_threshold=args.suv_threshold, save_organs=args.save_organs,
        dicom_seg=args.dicom_seg, rotating_mip=args.rotating_mip, overwrite=args.overwrite,
        progress=not args.no_pbar, num_parts=args.num_parts, part_id=args.part_id,
    )  # fmt: skip
    folds = None if options.folds is None else list(options.folds)
    model = check_model_folder(args.model, folds, options.checkpoint, options.tumor_label)
    cases = discover_cases(args.input, model.num_channels)
    result = predict_cases(cases, model.folder, args.output, options)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"predicted {len(result['predicted'])} case(s), skipped {len(result['skipped'])} "
            f"already done; summary: {result['summary']}"
        )
    return 0


def run_postprocess(args: argparse.Namespace) -> int:
    from .postprocess import postprocess_folder, resolve_prediction_labels

    label_set = resolve_prediction_labels(
        args.input, args.dataset_json, args.tracer, args.tumor_label
    )
    reports = postprocess_folder(
        args.input, args.pet, args.output, label_set, args.min_volume_ml,
        args.remove_in_organ, args.save_organs, args.overwrite, not args.no_pbar,
        args.num_parts, args.part_id, args.suv_threshold,
    )  # fmt: skip
    done = [r["case_id"] for r in reports]
    if args.json:
        print(json.dumps({"out": args.output, "processed": done}, indent=2))
    else:
        print(f"postprocessed {len(done)} case(s) into {args.output}")
    return 0
