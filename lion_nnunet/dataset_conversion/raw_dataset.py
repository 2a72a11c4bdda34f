"""Write an nnU-Net raw dataset from a cohort: PET in SUV + merged tumor/organ label maps.

Output, in ``$nnUNet_raw/DatasetXXX_NAME/``::

    imagesTr/<case>_0000.nii.gz   PET (SUV, float32), the only input channel
    labelsTr/<case>.nii.gz        uint8: 0 background, 1 tumor, 2..K organs (tumor wins)
    imagesTs/, labelsTs/          the same for test cases (labelsTs only where a tumor mask exists)
    dataset.json                  nnU-Net keys + "lion": tracer, with_organs, label set, version
    lion_cases.csv                case_id, patient_id, source_id (the name before sanitising),
                                  split, tracer, disease, center, scanner, sources,
                                  tumor_volume_ml, n_lesions
    .lion/<case>.json             per-case record: a re-run skips cases whose record and files
                                  are intact

Conversion first validates the whole cohort from file headers and reports every problem at
once, before anything is written. Data problems found while converting (NaN PET, odd mask values)
abort the run listing every failed case; finished cases stay and are skipped on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet import __version__, wording
from lion_nnunet.case_ids import SAFE_CASE_ID, sanitize_case_id
from lion_nnunet.cohort.cluster import ClusterOptions
from lion_nnunet.cohort.run import map_cases
from lion_nnunet.dataset_conversion.organs import organ_label_map
from lion_nnunet.errors import LionError
from lion_nnunet.inference.plausibility import read_pet
from lion_nnunet.io import (
    array_to_image,
    check_image_file,
    image_to_array,
    read_image,
    write_csv,
    write_image,
    write_json,
)
from lion_nnunet.labels import TUMOR_LABEL, LabelSet
from lion_nnunet.nnunet_env import dataset_folder_name, require_folder

log = logging.getLogger(__name__)

#: Connectivity used to count lesions (the autoPET evaluation's cc3d connectivity).
LESION_CONNECTIVITY = 18
CASES_CSV = "lion_cases.csv"
#: nnU-Net's custom-split file; in nnUNet_raw/DatasetXXX its planner copies it to preprocessed.
SPLITS_FILE = "splits_final.json"
DEFAULT_FOLDS = 5
CASE_ID = SAFE_CASE_ID
__all__ = ["CaseSource", "convert_cohort", "sanitize_case_id", "validate_cohort"]


@dataclass
class CaseSource:
    """One case to convert. ``tumor`` None = unlabelled test case; ``split`` "train" or "test".

    ``patient_id`` groups a patient's studies (every split keeps them on one side; default: the
    case id); ``source_id`` is the name the case had before sanitising (default: the case id).
    """

    case_id: str
    pet: Path
    tumor: Path | None
    organs: list[Path] = field(default_factory=list)
    split: str = "train"
    disease: str = ""
    center: str = ""
    scanner: str = ""
    patient_id: str = ""
    source_id: str = ""

    def __post_init__(self) -> None:
        self.patient_id = self.patient_id or self.case_id
        self.source_id = self.source_id or self.case_id


@dataclass
class _Job:
    source: CaseSource
    dataset_dir: str
    label_set: dict
    with_organs: bool
    signature: str
    redo: bool = False


def _header(path: Path, what: str) -> sitk.ImageFileReader | str:
    """The file's header, or the sentence saying why it is not a whole 3-D image.

    The whole-file check is the quick one (a .nii.gz whose gzip length field matches its header
    is not decompressed here); every image is read whole when it is converted.
    """
    try:
        check_image_file(path, what, quick=True)
    except LionError as e:
        return str(e)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()  # check_image_file read it once already
    return reader


def _header_mismatch(a: sitk.ImageFileReader, b: sitk.ImageFileReader) -> str | None:
    if a.GetDimension() != b.GetDimension():
        return f"dimension {b.GetDimension()} differs from {a.GetDimension()}"
    if a.GetSize() != b.GetSize():
        return f"size {b.GetSize()} differs from the PET's {a.GetSize()} (x, y, z voxels)"
    checks = (("spacing", 1e-3, "mm"), ("origin", 1e-2, "mm"), ("direction", 1e-4, ""))
    for name, tol, unit in checks:
        va = np.array(getattr(a, f"Get{name.title()}")())
        vb = np.array(getattr(b, f"Get{name.title()}")())
        if not np.allclose(va, vb, atol=tol):
            return (
                f"{name} {tuple(np.round(vb, 4))} {unit} differs from the PET's "
                f"{tuple(np.round(va, 4))} {unit}"
            ).replace("  ", " ")
    return None


def validate_cohort(cases: list[CaseSource], with_organs: bool) -> None:
    """Check ids, files and header geometry of every case; raise one LionError listing all."""
    problems: list[str] = []
    seen: dict[str, list[str]] = {}
    for case in cases:
        seen.setdefault(case.case_id, []).append(case.source_id)
        if not CASE_ID.match(case.case_id):
            problems.append(
                f"case id {case.case_id!r} has characters nnU-Net cannot use in a file name"
            )
        if case.split not in ("train", "test"):
            problems.append(f"{case.case_id}: split {case.split!r} is neither 'train' nor 'test'")
        if case.split == "train" and case.tumor is None:
            problems.append(f"{case.case_id}: a training case needs a tumor mask")
        pet = _header(case.pet, "PET") if case.pet.is_file() else f"{case.pet}: PET file not found"
        if isinstance(pet, str):
            problems.append(pet)
        elif pet.GetDimension() != 3 or pet.GetNumberOfComponents() != 1:
            problems.append(
                f"{case.pet}: PET has {pet.GetDimension()} dimensions and "
                f"{pet.GetNumberOfComponents()} components; expected one 3-D volume "
                "(dynamic/multi-frame PET is not supported)"
            )
        if case.tumor is not None:
            if not case.tumor.is_file():
                problems.append(f"{case.tumor}: tumor mask file not found")
            else:
                tumor = _header(case.tumor, "tumor mask")
                if isinstance(tumor, str):
                    problems.append(tumor)
                elif not isinstance(pet, str):
                    diff = _header_mismatch(pet, tumor)
                    if diff:
                        problems.append(
                            f"{case.tumor}: {diff}; tumor masks must be on the PET grid "
                            "(resample with nearest neighbour onto the PET first)"
                        )
        if with_organs:
            if not case.organs:
                problems.append(f"{case.case_id}: no organ labels given (or use --no-organs)")
            problems += [
                f"{p}: organ label file or folder not found" for p in case.organs if not p.exists()
            ]
    problems += [
        f"case id {cid!r} occurs {len(src)} times"
        + (f" (from {', '.join(map(repr, src))} after sanitising)" if set(src) != {cid} else "")
        for cid, src in seen.items()
        if len(src) > 1
    ]
    if problems:
        listed = "\n  - ".join(problems)
        raise LionError(
            f"{len(problems)} problem(s) in the cohort; nothing was written:\n  - {listed}"
        )


def _signature(source: CaseSource, label_set: LabelSet, with_organs: bool) -> str:
    parts = [json.dumps(label_set.to_dict(), sort_keys=True), str(with_organs), source.split]
    for p in [source.pet, source.tumor, *source.organs]:
        if p is not None:
            st = p.stat()
            parts.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def _read_pet(path: Path) -> tuple[sitk.Image, np.ndarray]:
    img, suv, _ = read_pet(path)  # whole file, values checked as lion predict does
    if (neg := suv < 0).any():  # check_pet_values warned about them
        log.info("%s: %d negative SUV voxels clipped to 0", path, neg.sum())
        suv = np.clip(suv, 0, None)
    return img, suv


def _read_tumor(path: Path) -> np.ndarray:
    arr = image_to_array(read_image(path, "tumor mask"))
    if np.issubdtype(arr.dtype, np.floating) and (
        not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr))
    ):
        odd = np.unique(arr[arr != np.round(arr)])[:3]
        raise LionError(
            f"{path}: tumor mask has non-integer values (e.g. {odd.tolist()}); expected 0 for "
            "background and positive integers for tumor (is it a probability map?)"
        )
    if arr.min() < 0:
        raise LionError(f"{path}: tumor mask has negative values (min {arr.min()}); expected >= 0")
    return arr > 0


def _case_outputs(dataset_dir: Path, case: CaseSource) -> tuple[Path, Path | None]:
    sub = "Tr" if case.split == "train" else "Ts"
    image = dataset_dir / f"images{sub}" / f"{case.case_id}_0000.nii.gz"
    label = dataset_dir / f"labels{sub}" / f"{case.case_id}.nii.gz" if case.tumor else None
    return image, label


def _record_path(dataset_dir: Path, case_id: str) -> Path:
    return dataset_dir / ".lion" / f"{case_id}.json"


def _is_done(job: _Job) -> dict | None:
    """The case's record when it was converted before with the same inputs and its files exist."""
    dataset_dir = Path(job.dataset_dir)
    record_file = _record_path(dataset_dir, job.source.case_id)
    if not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text())
    except json.JSONDecodeError:
        return None
    image, label = _case_outputs(dataset_dir, job.source)
    if record.get("signature") != job.signature or not image.is_file():
        return None
    if label is not None and not label.is_file():
        return None
    return record["row"]


def _convert_case(job: _Job) -> dict:
    """Convert one case; return {"row": ...} or {"error": "..."} (errors are collected)."""
    src = job.source
    try:
        done = None if job.redo else _is_done(job)
        if done is not None:
            return {"row": done, "skipped": True}
        label_set = LabelSet.from_dict(job.label_set)
        dataset_dir = Path(job.dataset_dir)
        pet_img, suv = _read_pet(src.pet)
        image_path, label_path = _case_outputs(dataset_dir, src)
        row = {
            "case_id": src.case_id, "patient_id": src.patient_id, "source_id": src.source_id,
            "split": src.split, "tracer": label_set.tracer,
            "disease": src.disease, "center": src.center, "scanner": src.scanner,
            "pet_source": str(src.pet), "tumor_source": str(src.tumor or ""),
            "organs_source": ";".join(map(str, src.organs)),
            "tumor_volume_ml": np.nan, "n_lesions": np.nan,
        }  # fmt: skip
        if src.tumor is not None:
            tumor = _read_tumor(src.tumor)
            labels = np.zeros(tumor.shape, dtype=np.uint8)
            if job.with_organs:
                labels = organ_label_map(src.organs, pet_img, label_set)
            labels[tumor] = TUMOR_LABEL
            voxel_ml = float(np.prod(pet_img.GetSpacing())) / 1000.0
            row["tumor_volume_ml"] = round(float(tumor.sum()) * voxel_ml, 4)
            row["n_lesions"] = int(
                cc3d.connected_components(tumor, connectivity=LESION_CONNECTIVITY, return_N=True)[1]
            )
            label_img = array_to_image(labels, pet_img)
            write_image(label_img, label_path)
        out_pet = array_to_image(suv, pet_img)
        write_image(out_pet, image_path)
        write_json({"signature": job.signature, "row": row}, _record_path(dataset_dir, src.case_id))
        return {"row": row, "skipped": False}
    except LionError as e:
        return {"error": str(e)}
    except Exception as e:  # a worker must report, not kill the pool
        return {"error": f"{src.case_id}: unexpected {type(e).__name__}: {e}"}


def dataset_json(label_set: LabelSet, with_organs: bool, num_training: int) -> dict:
    """The nnU-Net dataset.json of a LION dataset (one PET channel, labels from labels.py)."""
    return {
        "channel_names": {"0": "PET"},
        "labels": label_set.labels(with_organs=with_organs),
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "name": "LION",
        "description": (
            "LION PET-only dataset: channel 0 is PET in SUV; labels: tumor 1"
            + (", auxiliary organ classes 2..K from TotalSegmentator" if with_organs else "")
        ),
        "lion": {
            "tracer": label_set.tracer,
            "with_organs": with_organs,
            "label_set": label_set.to_dict(),
            "lion_version": __version__,
        },
    }


def _prepare_dataset_dir(dataset_dir: Path, expected: dict, overwrite: bool) -> None:
    """Refuse a dataset folder with other content unless ``overwrite`` (then empty it)."""
    raw = dataset_dir.parent
    dataset_id = dataset_dir.name[len("Dataset") : len("Dataset") + 3]
    clashes = [p for p in raw.glob(f"Dataset{dataset_id}_*") if p.is_dir() and p != dataset_dir]
    if clashes:
        raise LionError(
            f"{clashes[0]}: dataset id {int(dataset_id)} is already used by another dataset name; "
            "nnU-Net needs one name per id: pick another --dataset-id or remove that folder"
        )
    if not dataset_dir.exists():
        return
    existing = dataset_dir / "dataset.json"
    same = False
    if existing.is_file():
        try:
            before = json.loads(existing.read_text()).get("lion", {})
            same = {k: before.get(k) for k in ("tracer", "with_organs", "label_set")} == {
                k: expected["lion"][k] for k in ("tracer", "with_organs", "label_set")
            }
        except json.JSONDecodeError:
            same = False
    elif not any(dataset_dir.iterdir()):
        return
    elif (dataset_dir / ".lion").is_dir() and not overwrite:
        # a conversion without dataset.json yet: other parts of this run writing their cases
        # (each case record carries its inputs' signature, so nothing foreign is kept)
        return
    if overwrite:
        shutil.rmtree(dataset_dir)
    elif not same:
        raise LionError(
            f"{dataset_dir} exists with other content (not this tracer/organ setting, or not a "
            "LION dataset); use --overwrite to replace it, or another --dataset-id/--name"
        )


def convert_cohort(
    cases: list[CaseSource],
    dataset_id: int,
    name: str,
    label_set: LabelSet,
    with_organs: bool = True,
    num_processes: int = 1,
    overwrite: bool = False,
    part_id: int = 0,
    num_parts: int = 1,
    progress: bool = True,
    seed: int = 0,
    cluster: ClusterOptions | None = None,
) -> Path:
    """Convert ``cases`` into ``$nnUNet_raw/DatasetXXX_NAME``; return the dataset folder.

    With ``num_parts > 1`` this run converts every ``num_parts``-th case starting at ``part_id``
    (same rule as ``nnUNetv2_predict -num_parts/-part_id``). Parts may run at the same time on
    one output folder: each writes only its own cases (temporary files are hidden ``.*.part``
    files no other part touches), and the shared files (dataset.json, lion_cases.csv,
    splits_final.json, the stale-output sweep) are written under a lock from the records
    present, so the last part to finish completes them. ``overwrite`` with several parts
    reconverts every case in place instead of emptying the folder under the other parts.

    When every training case is converted, ``splits_final.json`` (5 folds, whole patients per
    fold, stratified by disease; ``seed``) is written into the dataset folder, where nnU-Net's
    planner copies it to ``nnUNet_preprocessed`` (``lion plans install`` does the same).

    ``cluster`` (``--cluster``) runs the cases as Dask tasks and writes ``cohort.csv`` into the
    dataset folder; None or one local worker: ``num_processes`` local processes, as before.
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise LionError(
            f"--part-id {part_id} must be in 0..{num_parts - 1} (--num-parts {num_parts})"
        )
    if not cases:
        raise LionError("the cohort is empty: no cases found to convert")
    validate_cohort(cases, with_organs)
    dataset_dir = require_folder("nnUNet_raw") / dataset_folder_name(dataset_id, name)
    num_training = sum(c.split == "train" for c in cases)
    meta = dataset_json(label_set, with_organs, num_training)
    if num_parts == 1 or (part_id == 0 and not overwrite):
        _prepare_dataset_dir(dataset_dir, meta, overwrite)
    for sub in (".lion", "imagesTr", "labelsTr"):  # .lion first: marks a LION conversion
        (dataset_dir / sub).mkdir(parents=True, exist_ok=True)
    if any(c.split == "test" for c in cases):
        (dataset_dir / "imagesTs").mkdir(exist_ok=True)
    if any(c.split == "test" and c.tumor for c in cases):
        (dataset_dir / "labelsTs").mkdir(exist_ok=True)

    mine = sorted(cases, key=lambda c: c.case_id)[part_id::num_parts]
    ls_dict = label_set.to_dict()
    jobs = [
        _Job(
            c,
            str(dataset_dir),
            ls_dict,
            with_organs,
            _signature(c, label_set, with_organs),
            redo=overwrite and num_parts > 1,
        )
        for c in mine
    ]
    results = map_cases(
        _convert_case, jobs, [j.source.case_id for j in jobs], cluster, num_processes,
        f"convert {dataset_dir.name}", progress, dataset_dir,
        on_failure=lambda case_id, error: {"error": f"{case_id}: {error}"},
    )  # fmt: skip
    errors = [r["error"] for r in results if "error" in r]
    skipped = sum(bool(r.get("skipped")) for r in results)
    if skipped:
        log.info("%d case(s) were converted before and are unchanged: skipped", skipped)
    with _dataset_lock(dataset_dir):
        _remove_stale_outputs(dataset_dir, cases)
        write_json(meta, dataset_dir / "dataset.json")
        _write_cases_csv(dataset_dir, cases)
        _write_default_folds(dataset_dir, cases, seed)
    if errors:
        listed = "\n  - ".join(errors)
        raise LionError(
            f"{len(errors)} of {len(jobs)} case(s) failed; the others are written and a re-run "
            f"skips them:\n  - {listed}"
        )
    return dataset_dir


def _remove_stale_outputs(dataset_dir: Path, cases: list[CaseSource]) -> None:
    """Delete images/labels/records left by an earlier conversion that this cohort no longer has.

    A case that moved between train and test, or left the cohort, would otherwise stay in the
    old folder and nnU-Net would count it (``numTraining`` mismatch). Every part of a sharded run
    knows the whole cohort, so this is safe there too.
    """
    expected = {p for c in cases for p in _case_outputs(dataset_dir, c) if p is not None}
    expected |= {_record_path(dataset_dir, c.case_id) for c in cases}
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs", ".lion"):
        folder = dataset_dir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith("."):  # another part's file being written (atomic_path)
                continue
            if path.is_file() and path.name.endswith((".nii.gz", ".json")) and path not in expected:
                log.info("%s: no longer part of this cohort or split; removed", path)
                path.unlink()


@contextlib.contextmanager
def _dataset_lock(dataset_dir: Path) -> Iterator[None]:
    """Serialise the shared-file step of concurrent parts (an exclusive lock on .lion/lock)."""
    lock = dataset_dir / ".lion" / "lock"
    with lock.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: parts must not run at the same time there
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_default_folds(dataset_dir: Path, cases: list[CaseSource], seed: int) -> None:
    """nnU-Net's ``splits_final.json`` by patient, once every training case is converted."""
    from lion_nnunet.splitting import grouped_kfold

    train = [c for c in cases if c.split == "train"]
    if not all(_record_path(dataset_dir, c.case_id).is_file() for c in train):
        return  # another part (or a re-run after errors) completes it
    target = dataset_dir / SPLITS_FILE
    patients = {c.patient_id for c in train}
    if len(patients) < 2:
        log.warning("%d training patient(s): no cross-validation folds written", len(patients))
        target.unlink(missing_ok=True)
        return
    folds = grouped_kfold(
        {c.case_id: c.patient_id for c in train},
        {c.case_id: c.disease for c in train},
        folds=min(DEFAULT_FOLDS, len(patients)),
        seed=seed,
    )
    write_json(folds, target)


def _write_cases_csv(dataset_dir: Path, cases: list[CaseSource]) -> None:
    rows = []
    for case in cases:
        record = _record_path(dataset_dir, case.case_id)
        if record.is_file():
            row = json.loads(record.read_text())["row"]
            # ids come from this cohort (a record written before they existed lacks them)
            row.update(patient_id=case.patient_id, source_id=case.source_id)
            rows.append(row)
    if rows:
        write_csv(pd.DataFrame(rows), dataset_dir / CASES_CSV)


def choose_test_cases(
    case_ids: list[str], fraction: float, seed: int, patient_of: dict[str, str] | None = None
) -> set[str]:
    """A deterministic random subset of ``case_ids`` (about ``round(fraction * n)`` cases) made
    of whole patients (``patient_of``: case id -> patient id; default: one patient per case)."""
    from lion_nnunet.splitting import choose_test_cases as choose

    return choose({c: (patient_of or {}).get(c, c) for c in case_ids}, fraction, seed)


def read_case_list(path: Path) -> set[str]:
    """Case ids from a text file (one per line) or a CSV with a ``case_id`` column."""
    if not path.is_file():
        raise LionError(f"{path}: test-case list not found")
    text = path.read_text().strip().splitlines()
    if text and "," in text[0]:
        frame = pd.read_csv(path)
        if "case_id" not in frame:
            raise LionError(
                f"{path}: CSV has no 'case_id' column (columns: {wording.names(frame.columns)})"
            )
        return set(frame["case_id"].astype(str))
    return {line.strip() for line in text if line.strip()}


def asdict_source(case: CaseSource) -> dict:
    """A CaseSource as plain data (for --json output)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(case).items()}
