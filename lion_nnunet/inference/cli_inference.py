"""``lion predict`` and ``lion postprocess``."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import (
    add_cluster_args,
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_sharding,
    add_tracer,
    log_to,
)
from lion_nnunet.errors import LionError

PREDICT_EXAMPLES = """\
  lion predict -i $nnUNet_raw/Dataset501_LION_FDG/imagesTs -o out/ \\
       -m $nnUNet_results/Dataset501_LION_FDG/nnUNetTrainer_LION__LIONPlans__3d_fullres \\
       -f 0 1 2 3 4 --device cuda
  lion predict -i study/SUV.nii.gz -o out/ -m MODEL -f all --device cpu --disable-tta
  lion predict -i dicom_root/ -o out/ -m MODEL -f 0 --dicom-seg      # PET series -> SUV
  lion predict -i cases.csv -o out/ -m MODEL --num-parts 4 --part-id 0   # columns case_id,pet
  lion predict -i imagesTs/ -o out/ -m MODEL -f 0 1 --save-probabilities --save-organs
       # tumor_probability.nii.gz; per-lesion confidence and fold_agreement in report.json
  lion predict -i subjects/ -o out/ -m fdg --suv-threshold 2.5 --rotating-mip
       # lionz habits: <subject>/PT_*.nii.gz or DICOM, an installed model by name, -t, -g
  lion predict -i imagesTs/ -o out/ -d 501 -c 3d_fullres -tr nnUNetTrainer_LION -p LIONPlans \
       -f 0 -step_size 0.5 -npp 2 -nps 2 --disable_tta   # nnUNetv2_predict's names
  lion predict -i imagesTs/ -o out/ -m fdg --cluster local:2   # 2 worker processes (Dask)
  lion predict -i imagesTs/ -o out_clicks/ -m fdg --clicks clicks/   # <case_id>_clicks.json
       # a click model takes the clicks as input; other models get the rule-based edit
  lion predict -i imagesTs/ -o out_steps/ -m MODEL --click-steps clicks_steps/
       # step0 .. stepN of lion clicks steps, model loaded once; out_steps/steps/ for
       # lion evaluate --interactive
  lion predict -i autopet/ -o out/ -m fdg --cluster slurm --cluster-config slurm.yaml \\
       --max-workers 16      # one GPU job per worker; out/cohort.csv lists every case
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
        "--min-volume-ml", type=float, default=0.0, metavar="ML",
        help="drop tumor components smaller than this (ml, >= 0); 0 keeps all",
    )  # fmt: skip
    p.add_argument(
        "--remove-in-organ", nargs="+", default=[], metavar="ORGAN",
        help="drop tumor components inside or touching these organ classes (off by default)",
    )  # fmt: skip
    p.add_argument("--save-organs", action="store_true",
                   help="also write organs.nii.gz and organs.json (its label names)")  # fmt: skip
    p.add_argument(
        "--mip-window", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
        help="SUV window of the MIP pictures, the same for every case (default: FDG 0 10, "
        "PSMA 0 15)",
    )  # fmt: skip
    p.add_argument(
        "--tumor-label", type=int, default=None, metavar="N",
        help="the tumor's label id (default: the class named tumor/lesion in dataset.json)",
    )  # fmt: skip
    p.add_argument(
        "--suv-threshold", type=float, default=None, metavar="SUV",
        help="drop tumor voxels below this SUV (lionz's -t; fixed-threshold practice, e.g. 2.5)",
    )  # fmt: skip


def _add_model(p: argparse.ArgumentParser, required: bool) -> None:
    """``-m MODEL`` or nnUNetv2_predict's ``-d -c -tr -p``, and ``-f``."""
    which = p.add_mutually_exclusive_group(required=required)
    which.add_argument("-m", "--model",
                       help="installed model name (lion models list) or <Trainer>__<Plans>__"
                       "<config> folder (or its DatasetXXX folder)")  # fmt: skip
    which.add_argument("-d", "--dataset", metavar="DATASET",
                       help="dataset id or name: the model is $nnUNet_results/DatasetXXX_NAME/"
                       "<-tr>__<-p>__<-c>, as nnUNetv2_predict finds it")  # fmt: skip
    p.add_argument("-c", "--configuration", default="3d_fullres", help="with -d")
    p.add_argument("-tr", "--trainer", default="nnUNetTrainer_LION", help="with -d")
    p.add_argument("-p", "--plans", default="LIONPlans", help="with -d")
    p.add_argument("-f", "--folds", nargs="+", default=None,
                   help="folds to ensemble (default: all folds with a checkpoint)")  # fmt: skip


def _model_folder(args: argparse.Namespace) -> str | None:
    """The model of ``-m`` or ``-d -c -tr -p`` (None when neither is given)."""
    from .model import nnunet_model_folder

    if args.dataset is not None:
        return str(nnunet_model_folder(args.dataset, args.trainer, args.plans, args.configuration))
    return args.model


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to ``lion``."""
    p = add_command(
        subparsers, "predict",
        "segment tumors in PET (NIfTI folder/file, CSV or DICOM) with a trained LION model",
        PREDICT_EXAMPLES,
    )  # fmt: skip
    p.add_argument("-i", "--input", required=True, help="folder, CSV, image file or DICOM root")
    p.add_argument("-o", "--output", required=True, help="output folder")
    _add_model(p, required=True)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="auto: CUDA, else Apple MPS, else CPU")  # fmt: skip
    p.add_argument("--disable-tta", "--disable_tta", dest="disable_tta", action="store_true",
                   help="no test-time mirroring (faster)")  # fmt: skip
    p.add_argument("--checkpoint", "-chk", default="checkpoint_final.pth",
                   help="checkpoint file name in each fold_<f> folder")  # fmt: skip
    p.add_argument("--step-size", "-step_size", dest="step_size", type=float, default=0.5,
                   help="sliding-window step as a fraction of the patch, in (0, 1]; larger is "
                   "faster, less accurate (nnU-Net's -step_size)")  # fmt: skip
    p.add_argument("-npp", dest="npp", type=int, default=1, metavar="N",
                   help="threads reading and preprocessing upcoming cases (each holds a case in "
                   "memory)")  # fmt: skip
    p.add_argument(
        "-nps",
        dest="nps",
        type=int,
        default=1,
        metavar="N",
        help="threads filtering and writing finished cases while the network runs",
    )
    p.add_argument(
        "--save-suv",
        action="store_true",
        help="also write suv.nii.gz, the SUV image computed from DICOM input",
    )
    p.add_argument("--dicom-seg", action="store_true",
                   help="also write seg.dcm (DICOM-SEG referencing the PET series)")  # fmt: skip
    p.add_argument("--rotating-mip", action="store_true",
                   help="also write mip_rotating.gif (rotating PET MIP, tumor in red)")  # fmt: skip
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write tumor_probability.nii.gz (the fold ensemble's tumor "
                   "probability, float32 on the PET grid)")  # fmt: skip
    interaction = p.add_mutually_exclusive_group()
    interaction.add_argument(
        "--clicks", default=None, metavar="FILE|DIR",
        help="a reader's clicks (autoPET IV click files): a folder of <case_id>_clicks.json, or "
        "one file for a single image; a click model (nnUNetTrainer_LION_Clicks) takes them as "
        "input channels, a model trained without clicks applies the rule-based edit "
        "(docs/interactive.md)",
    )  # fmt: skip
    interaction.add_argument(
        "--click-steps", default=None, metavar="STEPS",
        help="every step of the autoPET IV protocol in one run, the model loaded once: STEPS/"
        "step0 .. stepN of click files (lion clicks steps); step n is predicted as --clicks "
        "STEPS/step<n> into OUT/step<n>/, and its tumor.nii.gz copied to OUT/steps/"
        "<case_id>_pred<n>.nii.gz for lion evaluate --interactive OUT/steps/",
    )  # fmt: skip
    _add_filters(p)
    add_sharding(p)
    add_cluster_args(p)
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
    _add_model(p, required=False)  # recorded in the reports: nnU-Net's output does not say
    _add_filters(p)
    add_sharding(p)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run_postprocess)
    log_to(p, "output")


def run_predict(args: argparse.Namespace) -> int:
    from lion_nnunet.cliutils import cluster_options
    from lion_nnunet.cohort.predict import predict_cohort
    from lion_nnunet.nnunet_env import apply_cpu_friendly_defaults
    from lion_nnunet.wording import failures

    from .model import check_model_folder
    from .options import PredictOptions
    from .predict import discover_cases

    apply_cpu_friendly_defaults()  # before the workers start: they inherit the environment
    cluster = cluster_options(args, progress=not args.no_pbar)
    options = PredictOptions(
        folds=args.folds, checkpoint=args.checkpoint, tumor_label=args.tumor_label,
        device=args.device, use_mirroring=not args.disable_tta, tile_step_size=args.step_size,
        min_volume_ml=args.min_volume_ml, remove_in_organs=args.remove_in_organ,
        suv_threshold=args.suv_threshold, save_organs=args.save_organs,
        dicom_seg=args.dicom_seg, rotating_mip=args.rotating_mip, save_suv=args.save_suv,
        save_probabilities=args.save_probabilities, mip_window=args.mip_window,
        num_processes_preprocessing=args.npp,
        num_processes_segmentation_export=args.nps, overwrite=args.overwrite,
        progress=not args.no_pbar, num_parts=args.num_parts, part_id=args.part_id,
    )  # fmt: skip
    folds = None if options.folds is None else list(options.folds)
    model = check_model_folder(_model_folder(args), folds, options.checkpoint, options.tumor_label)
    cases = discover_cases(args.input, model.num_channels)
    if args.click_steps is not None:
        return _predict_click_steps(args, cases, model.folder, options, cluster)
    if args.clicks is not None:
        from lion_nnunet.interactive.click_inputs import attach_click_files

        cases = attach_click_files(cases, args.clicks)
    result = predict_cohort(cases, model.folder, args.output, options, cluster)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"predicted {len(result['predicted'])} case(s), skipped {len(result['skipped'])} "
            f"done with the same settings; summary: {result['summary'] or 'none'}"
        )
    failed = result["failed"]
    if failed:  # the others were written; exit 1 naming the failed ones
        raise LionError(
            f"{len(failed)} case(s) not predicted, {len(result['predicted'])} predicted; a "
            f"re-run predicts only what is missing:\n{failures(failed)}"
        )
    return 0


def _predict_click_steps(args: argparse.Namespace, cases, model_folder, options, cluster) -> int:
    """``lion predict --click-steps``: every step in this process, one predictor for all."""
    from lion_nnunet.cohort.cluster import runs_here, visible_gpus
    from lion_nnunet.interactive.click_steps import predict_click_steps
    from lion_nnunet.wording import failures

    if not runs_here(cluster, visible_gpus(options.device)):
        raise LionError(
            f"--click-steps runs in one process (the model loaded once for every step); drop "
            f"--cluster {cluster.spec}, or run lion predict --clicks STEPS/step<n> per step on it"
        )
    result = predict_click_steps(cases, model_folder, args.output, args.click_steps, options)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['steps']} step(s): predicted {len(result['predicted'])} case-step(s), "
            f"skipped {len(result['skipped'])} done with the same settings; step predictions "
            f"for lion evaluate --interactive in {result['steps_dir']}"
        )
    failed = result["failed"]
    if failed:
        raise LionError(
            f"{len(failed)} case-step(s) not predicted, {len(result['predicted'])} predicted; a "
            f"re-run predicts only what is missing:\n{failures(failed)}"
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
        args.num_parts, args.part_id, args.suv_threshold, args.mip_window,
        _model_folder(args), args.folds,
    )  # fmt: skip
    done = [r["case_id"] for r in reports]
    if args.json:
        print(json.dumps({"out": args.output, "processed": done}, indent=2))
    else:
        print(f"postprocessed {len(done)} case(s) into {args.output}")
    return 0
