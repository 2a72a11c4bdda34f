"""`lion convert dicom`: a clinical DICOM tree -> autoPET study folders (SUV, CTres, SEG)."""

from __future__ import annotations

import argparse
import json
import sys

from lion_nnunet.cliutils import (
    HelpFormatter,
    add_cluster_args,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_processes,
    cluster_options,
)

EXAMPLES = """\
  lion convert dicom --input /data/pacs_export --output studies
  lion convert dicom --input /data/pacs_export --output studies --roi '(?i)^(gtv|lesion)' -np 4
  lion convert autopet --input studies --organs organs --tracer fdg --dataset-id 501 --name LION_FDG
"""


def register_dicom(kinds: argparse._SubParsersAction) -> None:
    """Add ``lion convert dicom`` to the ``lion convert`` layouts."""
    from lion_nnunet.dataset_conversion.dicom_masks import DEFAULT_ROI

    d = kinds.add_parser(
        "dicom",
        help="DICOM tree (PET, CT, DICOM-SEG/RTSTRUCT) -> <patient>/<study>/SUV, CTres, SEG.nii.gz",
        description="Find every PET study under --input (any folder layout), write the PET in "
        "body-weight SUV, the CT resampled onto the PET grid and the tumor mask from DICOM-SEG or "
        "RTSTRUCT as the autoPET study layout that `lion convert autopet` reads. A refused series "
        "is named with its reason; the others are converted; exit code 1 when any was refused. "
        "A study whose SEG/RTSTRUCT holds no ROI matching --roi is written without SEG.nii.gz "
        "(a warning names the ROIs found; the log's note column says so). "
        "Re-running skips studies already written. Log: <output>/dicom_conversion.csv.",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=HelpFormatter,
    )
    d.add_argument("--input", required=True, help="folder with DICOM files (any layout)")
    d.add_argument("--output", required=True, help="study folders are written here")
    d.add_argument(
        "--roi",
        default=DEFAULT_ROI,
        help="regular expression (re.search) picking tumor ROIs / SEG segments by name",
    )
    add_processes(d)
    add_cluster_args(d)
    add_overwrite(d)
    add_no_pbar(d)
    add_json(d)
    d.set_defaults(func=run_dicom)


def run_dicom(args: argparse.Namespace) -> int:
    from lion_nnunet.dataset_conversion.dicom_studies import LOG_FILE, NO_SEG, convert_dicom

    table = convert_dicom(
        args.input, args.output, args.roi, num_processes=args.num_processes,
        overwrite=args.overwrite, progress=not args.no_pbar,
        cluster=cluster_options(args, not args.no_pbar),
    )  # fmt: skip
    counts = table["status"].value_counts().to_dict()
    refused = table[table["status"] == "refused"]
    no_seg = table[(table["status"] == "written") & table["note"].str.startswith(NO_SEG)]
    for row in refused.itertuples(index=False):
        print(f"lion convert dicom: refused {row.series}: {row.reason}", file=sys.stderr)
    for row in no_seg.itertuples(index=False):
        print(f"lion convert dicom: warning: {row.study}: {row.note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"output": args.output, **{k: int(v) for k, v in counts.items()},
                          "without_seg": no_seg["study"].tolist(),
                          "refused_series": refused.to_dict("records")}))  # fmt: skip
    else:
        print(
            f"{args.output}: {counts.get('written', 0)} study(ies) written "
            f"({len(no_seg)} without SEG.nii.gz), {counts.get('skipped', 0)} already done, "
            f"{counts.get('refused', 0)} series refused; see {LOG_FILE}"
        )
    return 1 if len(refused) else 0
