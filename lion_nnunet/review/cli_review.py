"""``lion review``: build the review gallery of a prediction folder, optionally serve it."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import (
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_use_corrected,
    log_to,
)

EXAMPLES = """\
  lion review --pred out/ -o gallery/              # open gallery/index.html; Export CSV
  lion review --pred out/ -o gallery/ --gt $nnUNet_raw/Dataset501_LION_FDG/labelsTs
       # worst Dice first; lion evaluate's tables in gallery/evaluation/
  lion review --pred out/ -o gallery/ --serve      # open the printed http://127.0.0.1:8765/?token=...
  lion review --pred out/ -o gallery/ --overwrite --serve 0   # rebuild (reviews kept), any port
"""


def _port(text: str) -> int:
    """A TCP port 0..65535 (argparse type: a bad one is a usage error, exit code 2)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number 0..65535")
    return port


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion review``."""
    from .server import DEFAULT_PORT

    p = add_command(
        subparsers, "review",
        "one offline HTML page ranking predicted cases for review (accept/reject/comment)",
        EXAMPLES,
    )  # fmt: skip
    p.add_argument("--pred", required=True, help="lion predict's output folder")
    p.add_argument("--gt", default=None, metavar="LABELS",
                   help="ground-truth label maps <case_id>.nii.gz (labelsTs): cards go worst "
                   "Dice first")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="gallery folder (index.html, images/)")
    p.add_argument("--pet", default=None, metavar="FOLDER",
                   help="the PET (SUV) images <case>_0000.nii.gz the cases were predicted from: "
                   "the slice viewer shows them and --serve measures corrected masks on them "
                   "(default: each case's suv.nii.gz or report.json's input)")  # fmt: skip
    p.add_argument("--serve", nargs="?", type=_port, const=DEFAULT_PORT, default=None,
                   metavar="PORT",
                   help=f"serve the gallery on 127.0.0.1:PORT (default {DEFAULT_PORT}; 0: a free "
                   "port) and record decisions in reviews.csv until Ctrl-C")  # fmt: skip
    add_use_corrected(p, default=True)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run_review)
    log_to(p, "output")


def run_review(args: argparse.Namespace) -> int:
    from lion_nnunet.inference.outputs import write_summary

    from .gallery import build_gallery

    result = build_gallery(args.pred, args.output, args.gt, args.overwrite, not args.no_pbar,
                           args.use_corrected, args.pet)  # fmt: skip
    # the cohort's tables as the gallery shows them: corrected masks where they exist
    result["summary"] = str(write_summary(args.pred, args.use_corrected, to=args.output))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"gallery of {result['cases']} case(s): {result['index']}")
        print(f"corrected masks (tumor_corrected.nii.gz) shown for {len(result['corrected'])} "
              "case(s)" if args.use_corrected else "predictions shown, corrections ignored "
              "(--no-use-corrected)")  # fmt: skip
        print(f"cohort summary: {result['summary']} and lesions.csv beside it"
              + (" (column corrected: which rows are a reader's correction)"
                 if args.use_corrected else ""))  # fmt: skip
    if args.serve is None:
        return 0
    from .server import make_server, url_of

    server = make_server(args.output, set(result["order"]), args.serve, pred_dir=args.pred,
                         pet_dir=args.pet)  # fmt: skip
    print(
        f"serving {url_of(server)} (open this address: its token lets the page save; "
        f"decisions -> {result['reviews']}); Ctrl-C stops",
        flush=True,
    )
    print(server.corrections.click_methods_line(), flush=True)  # type: ignore[attr-defined]
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
