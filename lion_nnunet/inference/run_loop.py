"""The run loop of ``lion predict``: resume, then read ahead, predict and write each case.

:func:`predict_cases` takes the cases found by :func:`~lion_nnunet.inference.predict.discover_cases`
and a model, skips the cases already done with the same settings
(:mod:`lion_nnunet.inference.provenance`), and runs every other case through one
:class:`~lion_nnunet.inference.predict.LionPredictor`: upcoming cases are read and preprocessed
in ``-npp`` threads while the network runs, and finished cases are filtered and written in
``-nps`` threads (as ``nnUNetv2_predict`` does in worker processes); the network's logits of one
case are in memory at a time. A cohort worker (:mod:`lion_nnunet.cohort.predict`) calls it on one
case with its cached predictor. Arrays are numpy (z, y, x) as SimpleITK returns them.

Interactions enter through one seam, the case record: a case with a ``prompt`` (``lion predict
--clicks``, :mod:`lion_nnunet.interactive.prompt`) has its clicks read against its loaded PET
(a bad point fails that case, naming the file); a click model takes them as input channels
(:meth:`~lion_nnunet.interactive.prompt.CaseClicks.model_input`), any other model has them
applied to the filtered tumor mask (the rule-based edit) before the outputs are written;
report.json records them and which of the two it was (``click_mode``). The click file is one
of the case's inputs for resuming (:func:`files_identity`), so changed clicks make the case's
output out of date.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.progress import track

from .cases import Case
from .installed import checkpoint_sha256
from .model import check_model_folder
from .options import MIP_WINDOWS, PredictOptions
from .outputs import drop_failed_case, write_case_outputs, write_summary
from .postprocess import check_remove_in_organs, split_label_map
from .predict import EnsemblePrediction, LionPredictor
from .provenance import check_resume, files_identity, installed_name, run_settings

if TYPE_CHECKING:
    from lion_nnunet.interactive.prompt import CaseClicks

log = logging.getLogger(__name__)


def predict_cases(
    cases: Sequence[Case],
    model_folder: str | Path,
    out_dir: str | Path,
    options: PredictOptions | None = None,
    *,
    predictor: LionPredictor | None = None,
    summary: bool = True,
    plan_only: bool = False,
) -> dict:
    """Predict every case with one predictor; write per-case outputs and ``summary.csv``.

    A done case (report.json exists) is skipped when its recorded settings equal this run's
    (:mod:`lion_nnunet.inference.provenance`); a done case made with other settings stops the run
    before anything is written, unless ``options.overwrite``, which first removes every file the
    earlier run wrote for the case.

    Args:
        cases: from :func:`discover_cases`.
        model_folder: a model folder or an installed model's name.
        out_dir: output folder (``out/<case_id>/``, ``summary.csv``).
        options: every setting of the run (:class:`PredictOptions`); None = the defaults.
        predictor: a predictor already built for this model and these options (a cohort
            worker's, reused across its cases); None = build one when a case is to be predicted.
        summary: rebuild ``summary.csv`` at the end (a cohort task leaves it to the run).
        plan_only: check the model and the resume state, predict nothing; the answer's
            ``todo`` lists the cases to predict (the cohort runner's first step).

    Returns:
        ``{"out", "predicted", "skipped", "summary", "failed"}`` (case ids, paths as strings;
        ``failed``: case id -> the sentence saying why its input was refused; the other cases
        were predicted, the failed ones have no output folder).
    """
    o = options or PredictOptions()
    out_dir = Path(out_dir)
    model = check_model_folder(
        model_folder, None if o.folds is None else list(o.folds), o.checkpoint, o.tumor_label
    )
    check_remove_in_organs(model.label_set, o.remove_in_organs, f"the model {model.folder}")
    if o.dicom_seg and any(not c.dicom_files for c in cases):
        raise LionError("--dicom-seg needs DICOM input (a DICOM root with PET series) for -i")
    if o.save_suv and cases and not any(c.loader is not None for c in cases):
        raise LionError(
            "--save-suv keeps the SUV image computed from DICOM, but every -i case is already an "
            "SUV image file; drop --save-suv or give a DICOM root"
        )
    mine = list(cases)[o.part_id :: o.num_parts]
    window = o.mip_window or MIP_WINDOWS.get(model.label_set.tracer, MIP_WINDOWS["fdg"])
    resolved = {**o.result_settings(), "tumor_label": model.label_set.tumor_label,
                "mip_window": list(window)}  # fmt: skip
    sums = checkpoint_sha256(model)  # once per file per run (cached), whatever is skipped
    settings = run_settings(resolved, model, sums)
    identities = {c.case_id: files_identity(_input_files(c)) for c in mine}
    skipped = check_resume(out_dir, [c.case_id for c in mine], settings, o.overwrite, identities)
    todo = [c for c in mine if c.case_id not in skipped]
    if skipped:
        log.info("skipping %d case(s) done with the same settings in %s", len(skipped), out_dir)
    if plan_only:
        return {"out": str(out_dir), "todo": [c.case_id for c in todo], "skipped": skipped}
    provenance = {"model_path": str(model.folder.resolve()),
                  "installed_model": installed_name(model), "checkpoint": o.checkpoint,
                  "checkpoint_sha256": sums, "settings": settings}  # fmt: skip
    done: list[str] = []
    failed: dict[str, str] = {}
    if todo:
        if predictor is None:
            predictor = LionPredictor(
                model, o.device, o.use_mirroring, o.tile_step_size, o.checkpoint
            )
        provenance["device"] = predictor.predictor.device.type
        encoding = predictor.click_encoding  # None: a model trained without clicks
        ahead = o.num_processes_preprocessing

        def write_outputs(
            case: Case, prediction: EnsemblePrediction, image, suv, predict_s: float,
            clicks: CaseClicks | None,
        ) -> str:  # fmt: skip
            t1 = time.perf_counter()
            spacing_zyx = tuple(float(s) for s in image.GetSpacing()[::-1])
            tumor, organs = split_label_map(
                prediction.label_map, model.label_set, spacing_zyx, o.min_volume_ml,
                o.remove_in_organs, suv, o.suv_threshold,
            )  # fmt: skip
            interaction: dict = {}
            if clicks is not None and encoding is not None:  # the clicks were the network's input
                interaction = clicks.model_record(encoding)
            elif clicks is not None:  # after the filters: a click is the reader's word
                tumor, interaction = clicks.edit(tumor, suv, spacing_zyx)
            more = _more_outputs(case, tumor, suv, image, o.dicom_seg, o.rotating_mip, window)
            report = write_case_outputs(
                out_dir / case.case_id, case.case_id, image, suv, tumor, organs,
                model.label_set, save_organs=o.save_organs, model=model.name,
                folds=list(model.folds), extra={"input": case.source,
                "input_identity": identities[case.case_id],
                "tumor_label": model.label_set.tumor_label, "suv_threshold": o.suv_threshold,
                **interaction, **provenance, "timing_s": {"predict": round(predict_s, 3)}},
                more_outputs=more, mip_window=window,
                save_suv=o.save_suv and case.loader is not None,
                tumor_probability=prediction.tumor_probability,
                fold_tumors=prediction.fold_tumors, save_probabilities=o.save_probabilities,
            )  # fmt: skip
            report["timing_s"]["outputs"] = round(time.perf_counter() - t1, 3)
            from lion_nnunet.io import write_json

            write_json(report, out_dir / case.case_id / "report.json")
            return case.case_id

        # upcoming cases are read and preprocessed in -npp threads while the network runs, and
        # finished cases are filtered and written in -nps threads (as nnUNetv2_predict does in
        # worker processes); the network's logits of one case are in memory at a time
        with (
            ThreadPoolExecutor(max_workers=ahead) as readers,
            ThreadPoolExecutor(max_workers=o.num_processes_segmentation_export) as writers,
        ):
            upcoming = deque(readers.submit(predictor.prepare, c) for c in todo[:ahead])
            writing: deque = deque()
            for k, case in enumerate(track(todo, "predict", len(todo), o.progress)):
                t0 = time.perf_counter()
                future = upcoming.popleft()
                if k + ahead < len(todo):
                    upcoming.append(readers.submit(predictor.prepare, todo[k + ahead]))
                try:  # an input that fails a check: name it, go on with the others
                    tensor, props, image, suv = future.result()
                    clicks = None if case.prompt is None else case.prompt.read(image)
                    if clicks is not None and encoding is not None:
                        tensor = clicks.model_input(tensor, props, predictor.predictor, encoding)
                except LionError as e:
                    failed[case.case_id] = str(e)
                    # said once, by the caller's summary of the failures (lion.log gets this)
                    log.info("case %s not predicted: %s", case.case_id, e)
                    drop_failed_case(out_dir / case.case_id)
                    continue
                prediction = predictor.predict_ensemble(tensor, props)
                del tensor
                if not isinstance(predictor.reader, _simpleitk_io()):
                    prediction = EnsemblePrediction(  # the probabilities stay in nnU-Net's order
                        _label_map_via_reader(predictor, prediction.label_map, props, case)
                    )
                while len(writing) >= o.num_processes_segmentation_export:
                    done.append(writing.popleft().result())
                seconds = time.perf_counter() - t0
                writing.append(
                    writers.submit(write_outputs, case, prediction, image, suv, seconds, clicks)
                )
            while writing:
                done.append(writing.popleft().result())
    summary_csv = write_summary(out_dir) if summary else None
    return {
        "out": str(out_dir),
        "predicted": done,
        "skipped": skipped,
        "summary": str(summary_csv) if summary_csv else None,
        "failed": failed,
    }


def _input_files(case: Case) -> list[Path]:
    """The files a case's outputs are made from: its images (or DICOM files) and click file."""
    files = list(case.files or case.dicom_files)
    return files if case.prompt is None else [*files, case.prompt.click_file]


def _more_outputs(
    case: Case, tumor: np.ndarray, suv: np.ndarray, image: sitk.Image, dicom_seg: bool,
    rotating: bool, window: tuple[float, float],
) -> Callable[[Path], dict] | None:  # fmt: skip
    """The optional per-case outputs (DICOM-SEG, rotating MIP) as one write function, or None."""
    if not (dicom_seg or rotating):
        return None

    def more(case_dir: Path) -> dict:
        out = {}
        if dicom_seg:
            from .dicom_seg import write_dicom_seg

            out["dicom_seg"] = write_dicom_seg(tumor, case.dicom_files, case_dir / "seg.dcm").name
        if rotating:
            from .pictures import lps_arrays
            from .rotating_mip import save_rotating_mip

            (suv_lps, tumor_lps), spacing_zyx = lps_arrays(image, suv, tumor)
            path = save_rotating_mip(suv_lps, tumor_lps, spacing_zyx,
                                     case_dir / "mip_rotating.gif", window=window)  # fmt: skip
            out["mip_rotating"] = path.name
        return out

    return more


def _simpleitk_io():
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    return SimpleITKIO


def _label_map_via_reader(
    predictor: LionPredictor, label_map: np.ndarray, props: dict, case: Case
) -> np.ndarray:
    """Label map in SimpleITK (z, y, x) order for models whose reader is not SimpleITKIO."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seg{predictor.model.file_ending}"
        predictor.reader.write_seg(label_map, str(path), props)
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
