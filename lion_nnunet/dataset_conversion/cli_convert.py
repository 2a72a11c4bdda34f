"""`lion convert autopet|manifest|reviews`: cohorts -> nnU-Net raw datasets with LION label maps.

`lion convert dicom` (DICOM -> autoPET study folders) lives in cli_dicom.py.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lion_nnunet.cliutils import (
    HelpFormatter,
    add_cluster_args,
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_processes,
    add_sharding,
    cluster_options,
)

log = logging.getLogger(__name__)

EXAMPLES = """\
  lion convert autopet --input fdg_synth/studies --organs fdg_synth/organs --tracer fdg \\
      --metadata fdg_synth/cases.csv --dataset-id 501 --name LION_FDG --test-fraction 0.2
  lion convert autopet --input fdg_synth/studies --organs fdg_synth/organs --tracer fdg \\
      --dataset-id 502 --name LION_FDG_noorgans --no-organs          # organ-context ablation
  lion convert manifest --input my_cohort.csv --tracer psma --dataset-id 601 --name LION_PSMA
  lion convert reviews --pred out/ --reviews gallery/reviews.csv --pet imagesTs --tracer fdg \
      --dataset-id 511 --name LION_FDG_reviewed    # accepted + corrected cases, to fine-tune on
"""


def _common(p: argparse.ArgumentParser) -> None:
    from lion_nnunet.labels import TRACERS

    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--tracer", choices=TRACERS, help="tracer: picks the built-in organ label set")
    who.add_argument("--label-set", help="JSON file with your own organ label set")
    p.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1..999)")
    p.add_argument("--name", required=True, help="dataset name: DatasetXXX_<name>")
    p.add_argument("--no-organs", action="store_true", help="tumor-only labels {0,1} (ablation)")
    p.add_argument(
        "--test-fraction", type=float, default=0.0,
        help="move this share of labelled cases (whole patients) to imagesTs",
    )  # fmt: skip
    p.add_argument("--test-cases",
                   help="file with case ids (one per line or a case_id column); their patients' "
                   "other studies move to test too")  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=0,
        help="seed of --test-fraction and of the 5 folds in splits_final.json",
    )  # fmt: skip
    add_processes(p)
    add_sharding(p)
    add_cluster_args(p)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion convert autopet``, ``manifest``, ``reviews`` (and ``dicom``)."""
    conv = add_command(
        subparsers, "convert", "convert a cohort into an nnU-Net raw dataset", EXAMPLES
    )
    kinds = conv.add_subparsers(dest="kind", metavar="<layout>", required=True)
    a = kinds.add_parser(
        "autopet",
        help="autoPET layout: <patient>/<study>/SUV.nii.gz + SEG.nii.gz, or autoPET III imagesTr",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=HelpFormatter,
    )
    a.add_argument("--input", required=True, help="cohort folder")
    a.add_argument("--organs", help="folder of TotalSegmentator outputs (per study or per case)")
    a.add_argument(
        "--metadata", help="CSV with disease/center/scanner (autoPET metadata or cases.csv)"
    )
    _common(a)
    a.set_defaults(func=run)
    m = kinds.add_parser(
        "manifest",
        help="CSV with case_id, pet, tumor, organs [, disease, center, scanner, split]",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=HelpFormatter,
    )
    m.add_argument("--input", required=True, help="manifest CSV")
    _common(m)
    m.set_defaults(func=run)
    r = kinds.add_parser(
        "reviews",
        help="the cases accepted or corrected in lion review (reviews.csv) of a lion predict "
        "folder, corrected masks where they exist",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=HelpFormatter,
    )
    r.add_argument("--pred", required=True, help="lion predict's output folder")
    r.add_argument("--reviews", required=True, metavar="CSV",
                   help="the review's decisions: GALLERY/reviews.csv of lion review")  # fmt: skip
    r.add_argument("--pet", metavar="FOLDER",
                   help="the PET (SUV) images <case>_0000.nii.gz the cases were predicted from "
                   "(default: each case's suv.nii.gz or report.json's input)")  # fmt: skip
    r.add_argument("--organs", metavar="FOLDER",
                   help="TotalSegmentator outputs <case_id>/ or <case_id>.nii.gz (default: each "
                   "case's organs.nii.gz from lion predict --save-organs)")  # fmt: skip
    _common(r)
    r.set_defaults(func=run)
    from lion_nnunet.dataset_conversion.cli_dicom import register_dicom

    register_dicom(kinds)


def run(args: argparse.Namespace) -> int:
    from lion_nnunet.dataset_conversion.autopet import discover_autopet
    from lion_nnunet.dataset_conversion.manifest import read_manifest
    from lion_nnunet.dataset_conversion.raw_dataset import (
        choose_test_cases,
        convert_cohort,
        read_case_list,
    )
    from lion_nnunet.errors import LionError
    from lion_nnunet.labels import resolve_label_set

    label_set = resolve_label_set(args.tracer, args.label_set)
    with_organs = not args.no_organs
    reviewed = None
    if args.kind == "reviews":
        from lion_nnunet.dataset_conversion.reviewed import reviewed_cohort

        reviewed = reviewed_cohort(args.pred, args.reviews, args.pet, args.organs, with_organs)
        cases = reviewed.cases
    elif args.kind == "autopet":
        if with_organs and not args.organs:
            raise LionError("--organs is required unless --no-organs is given")
        cases = discover_autopet(args.input, args.organs, label_set.tracer, args.metadata)
        if not with_organs:
            for c in cases:
                c.organs = []
    else:
        cases = read_manifest(args.input, with_organs)
    labelled = [c for c in cases if c.tumor is not None and c.split == "train"]
    patient_of = {c.case_id: c.patient_id for c in labelled}
    if args.test_cases:
        named = read_case_list(Path(args.test_cases))
        known = {c.case_id for c in cases} | {c.source_id for c in cases}
        unknown = sorted(named - known)
        if unknown:
            raise LionError(f"{args.test_cases}: unknown case id(s) {unknown[:5]}")
        # whole patients: a named study takes the patient's other studies with it
        patients = {c.patient_id for c in cases if c.case_id in named or c.source_id in named}
        test = {c.case_id for c in cases if c.patient_id in patients}
        extra = sorted(test - named - {c.case_id for c in cases if c.source_id in named})
        if extra:
            log.warning(
                "%d more case(s) moved to test with their patient's named studies: %s",
                len(extra), ", ".join(extra[:10]),
            )  # fmt: skip
    else:
        test = choose_test_cases(list(patient_of), args.test_fraction, args.seed, patient_of)
    for c in cases:
        if c.case_id in test:
            c.split = "test"
    folder = convert_cohort(
        cases, args.dataset_id, args.name, label_set, with_organs=with_organs,
        num_processes=args.num_processes, overwrite=args.overwrite, part_id=args.part_id,
        num_parts=args.num_parts, progress=not args.no_pbar, seed=args.seed,
        cluster=cluster_options(args, not args.no_pbar),
    )  # fmt: skip
    n_test = sum(c.split == "test" for c in cases)
    result = {"dataset_dir": str(folder), "train": len(cases) - n_test, "test": n_test}
    if reviewed is not None:
        result.update(corrected=reviewed.corrected, left_out=reviewed.left_out)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{folder}: {len(cases) - n_test} training + {n_test} test case(s); see lion_cases.csv")
    if reviewed is not None:
        print(
            f"masks: tumor_corrected.nii.gz for {len(reviewed.corrected)} corrected case(s), "
            f"tumor.nii.gz for {len(cases) - len(reviewed.corrected)} accepted as predicted"
        )
        for reason, ids in reviewed.left_out.items():
            print(f"left out ({reason}): {len(ids)} case(s): {', '.join(ids[:10])}"
                  + (" ..." if len(ids) > 10 else ""))  # fmt: skip
    return 0
