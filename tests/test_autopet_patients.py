"""autoPET as published: real case names, several studies per patient, one case id everywhere.

The trees here copy the phantom studies into the layouts of the public releases, with the real
naming patterns: FDG-PET-CT-Lesions (``PETCT_<hash>/<MM-DD-YYYY>-NA-PET-CT Ganzkoerper  primaer
mit KM-<n>/``, several studies for some patients) and autoPET III (``fdg_<hash>_<date>-NA-...``
and ``psma_<hash>_<YYYY-MM-DD>`` file names with spaces). Which study belongs to which patient is
known from how the tree was built, independently of the converter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lion_nnunet.case_ids import autopet_patient_id, sanitize_case_id
from lion_nnunet.cli import main

DESC = "NA-PET-CT Ganzkoerper  primaer mit KM"
# patient folder -> its studies (autoPET FDG: 1,014 studies of 900 patients; some have 2-3)
TREE = {
    "PETCT_0117d7f11f": ["09-13-2001", "03-02-2002", "11-20-2002"],
    "PETCT_0223010e46": ["08-10-2003", "06-01-2004"],
    "PETCT_02ba4b4d6b": ["01-04-2005", "07-22-2005"],
    "PETCT_0307a2d7c0": ["05-05-2006"],
    "PETCT_0459c4e7c1": ["02-17-2007"],
    "PETCT_05aa9c4c27": ["12-12-2008"],
}
DISEASE = {"PETCT_0117d7f11f": "lymphoma", "PETCT_0223010e46": "melanoma",
           "PETCT_02ba4b4d6b": "lung_cancer", "PETCT_0307a2d7c0": "lymphoma",
           "PETCT_0459c4e7c1": "negative", "PETCT_05aa9c4c27": "melanoma"}  # fmt: skip


def _study_name(date: str, k: int) -> str:
    return f"{date}-{DESC}-{68547 + k}"


def _autopet_tree(fdg_cohort: Path, root: Path) -> dict[str, str]:
    """Copy the 10 phantom studies into an FDG-PET-CT-Lesions tree; return {study path: patient}.

    Also writes organs in the same layout and the official-style metadata CSV.
    """
    phantoms = sorted((fdg_cohort / "studies").glob("*/study_01"))
    owner, rows, k = {}, [], 0
    for patient, dates in TREE.items():
        for date in dates:
            rel = f"{patient}/{_study_name(date, k)}"
            src = phantoms[k]
            shutil.copytree(src, root / "studies" / rel)
            organ_src = fdg_cohort / "organs" / src.relative_to(fdg_cohort / "studies")
            shutil.copytree(organ_src, root / "organs" / rel)
            owner[rel] = patient
            location = f"./FDG-PET-CT-Lesions/{rel}/1.000000-PET-12345"
            rows.append(
                {"Subject ID": patient, "diagnosis": DISEASE[patient].upper(),
                 "File Location": location}
            )  # fmt: skip
            k += 1
    pd.DataFrame(rows).to_csv(root / "Metadata.csv", index=False)
    return owner


@pytest.fixture(scope="module")
def autopet_tree(fdg_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("autopet")
    return root, _autopet_tree(fdg_cohort, root)


def _convert(root: Path, did: int, *extra: str) -> Path:
    args = ["convert", "autopet", "--input", str(root / "studies"), "--organs",
            str(root / "organs"), "--metadata", str(root / "Metadata.csv"), "--tracer", "fdg",
            "--dataset-id", str(did), "--name", f"AP{did}", "-np", "1", "--no-pbar",
            *extra]  # fmt: skip
    assert main(args) == 0
    return next(Path(__import__("os").environ["nnUNet_raw"]).glob(f"Dataset{did:03d}_*"))


def _patient_of_case(folder: Path, owner: dict[str, str]) -> dict[str, str]:
    """case id -> patient, from the tree's own bookkeeping (via the source path of each case)."""
    table = pd.read_csv(folder / "lion_cases.csv", dtype=str)
    out = {}
    for row in table.itertuples():
        rel = Path(row.pet_source).parent.relative_to(Path(row.pet_source).parents[2]).as_posix()
        out[row.case_id] = owner[rel]
    return out


def _no_patient_on_both_sides(a: set[str], b: set[str], patient_of: dict[str, str]) -> None:
    both = {patient_of[c] for c in a} & {patient_of[c] for c in b}
    assert not both, f"patients on both sides: {both}"


def test_every_split_keeps_a_patients_studies_together(autopet_tree, nnunet_dirs) -> None:
    root, owner = autopet_tree
    folder = _convert(root, 701, "--test-fraction", "0.25", "--seed", "3")
    truth = _patient_of_case(folder, owner)
    cases = pd.read_csv(folder / "lion_cases.csv", dtype=str).set_index("case_id")
    # ids: single-study patients keep the patient name, others get <patient>_<study>, sanitised
    assert "PETCT_0307a2d7c0" in cases.index
    assert f"PETCT_0117d7f11f_09-13-2001-{DESC.replace('  ', '-').replace(' ', '-')}-68547" in (
        cases.index
    )
    assert (cases.patient_id == pd.Series(truth)).all()
    assert cases.loc["PETCT_0307a2d7c0", "disease"] == "lymphoma"  # from the official metadata
    train = set(cases.index[cases.split == "train"])
    test = set(cases.index[cases.split == "test"])
    assert test and train and len(train | test) == 10
    _no_patient_on_both_sides(train, test, truth)
    # nnU-Net's folds: lion convert writes them where nnU-Net's planner picks them up
    folds = json.loads((folder / "splits_final.json").read_text())
    assert len(folds) == 5
    assert sorted(c for f in folds for c in f["val"]) == sorted(train)  # each case validated once
    for f in folds:
        assert set(f["train"]) | set(f["val"]) == train and f["val"]
        _no_patient_on_both_sides(set(f["train"]), set(f["val"]), truth)
    # --test-cases names one study; the patient's other studies follow it
    one = next(c for c in train if truth[c] == "PETCT_0223010e46")
    (root / "test.txt").write_text(one + "\n")
    folder = _convert(root, 702, "--test-cases", str(root / "test.txt"), "--no-organs")
    cases = pd.read_csv(folder / "lion_cases.csv", dtype=str).set_index("case_id")
    moved = set(cases.index[cases.split == "test"])
    assert moved == {c for c, p in truth.items() if p == "PETCT_0223010e46"} and len(moved) == 2


def test_lion_splits_and_plans_install_keep_patients_together(autopet_tree, nnunet_dirs) -> None:
    from lion_nnunet.plans.splits import install_default_splits

    root, owner = autopet_tree
    folder = _convert(root, 703, "--no-organs")
    truth = _patient_of_case(folder, owner)
    pre = Path(nnunet_dirs["nnUNet_preprocessed"]) / folder.name
    pre.mkdir(parents=True)
    # what lion plans install / nnU-Net's planner do with the raw folder's folds
    assert install_default_splits(folder.name) == pre / "splits_final.json"
    assert (pre / "splits_final.json").read_text() == (folder / "splits_final.json").read_text()
    assert main(["splits", "-d", "703", "--subset-sizes", "3", "6", "--val-size", "3",
                 "--overwrite"]) == 0  # fmt: skip
    splits = json.loads((pre / "splits_final.json").read_text())
    assert [len(s["train"]) >= n for s, n in zip(splits, (3, 6), strict=True)] == [True, True]
    assert set(splits[0]["train"]) <= set(splits[1]["train"])
    for s in splits:
        _no_patient_on_both_sides(set(s["train"]), set(s["val"]), truth)
    assert main(["splits", "-d", "703", "--folds", "3", "--overwrite"]) == 0
    folds = json.loads((pre / "splits_final.json").read_text())
    assert len(folds) == 3 and sorted(c for f in folds for c in f["val"]) == sorted(truth)
    for f in folds:
        _no_patient_on_both_sides(set(f["train"]), set(f["val"]), truth)
    table = pd.read_csv(pre / "lion_splits.csv")
    assert set(table.columns) >= {"fold", "role", "case_id", "patient_id", "disease"}


def test_folds_are_disease_stratified_by_brute_force() -> None:
    """3 diseases x 10 patients with 1-3 studies: each fold gets 2 patients of each disease."""
    from lion_nnunet.splitting import grouped_kfold, patients_on_both_sides

    patient_of, disease = {}, {}
    for d, name in enumerate(("lymphoma", "melanoma", "lung_cancer")):
        for p in range(10):
            for s in range(1 + (p + d) % 3):
                cid = f"{name}_{p}_{s}"
                patient_of[cid], disease[cid] = f"{name}_{p}", name
    folds = grouped_kfold(patient_of, disease, folds=5, seed=1)
    assert not patients_on_both_sides(folds, patient_of)
    for f in folds:
        per_disease = pd.Series({patient_of[c]: disease[c] for c in f["val"]}).value_counts()
        assert per_disease.to_dict() == {"lymphoma": 2, "melanoma": 2, "lung_cancer": 2}
    sizes = [len(f["val"]) for f in folds]
    assert max(sizes) - min(sizes) <= 3  # 60 studies: about 12 per fold


AUTOPET3 = [  # real autoPET III patterns: spaces, double spaces, long study descriptions
    "fdg_0168f65af8_04-04-2003-NA-PET-CT Ganzkoerper  primaer mit KM-82224",
    "fdg_0168f65af8_06-11-2004-NA-PET-CT Ganzkoerper  primaer mit KM-10351",
    "fdg_3a9c1e04b2_12-30-2002-NA-Unspecified CT ABDOMEN-93772",
    "psma_95b833d46f153cd2_2018-04-16",
]


def _autopet3_tree(fdg_cohort: Path, root: Path, names: list[str]) -> None:
    src = fdg_cohort / "studies/SYNFDG_0001/study_01"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for name in names:
        shutil.copy(src / "CTres.nii.gz", root / "imagesTr" / f"{name}_0000.nii.gz")
        shutil.copy(src / "SUV.nii.gz", root / "imagesTr" / f"{name}_0001.nii.gz")
        shutil.copy(src / "SEG.nii.gz", root / "labelsTr" / f"{name}.nii.gz")


def test_autopet3_names_are_sanitised_and_grouped_by_patient(
    fdg_cohort: Path, tmp_path: Path, nnunet_dirs
) -> None:
    _autopet3_tree(fdg_cohort, tmp_path / "ap3", AUTOPET3)
    assert main(["convert", "autopet", "--input", str(tmp_path / "ap3"), "--tracer", "fdg",
                 "--no-organs", "--dataset-id", "704", "--name", "AP3", "-np", "1",
                 "--no-pbar"]) == 0  # fmt: skip
    folder = next(Path(nnunet_dirs["nnUNet_raw"]).glob("Dataset704_*"))
    cases = pd.read_csv(folder / "lion_cases.csv", dtype=str)
    assert sorted(cases.source_id) == sorted(AUTOPET3[:3])  # the PSMA case is another tracer's
    # the documented rule by hand: each run of spaces (any character but A-Z a-z 0-9 _ - .)
    # becomes one '-'
    assert dict(zip(cases.source_id, cases.case_id, strict=True)) == {
        AUTOPET3[0]: "fdg_0168f65af8_04-04-2003-NA-PET-CT-Ganzkoerper-primaer-mit-KM-82224",
        AUTOPET3[1]: "fdg_0168f65af8_06-11-2004-NA-PET-CT-Ganzkoerper-primaer-mit-KM-10351",
        AUTOPET3[2]: "fdg_3a9c1e04b2_12-30-2002-NA-Unspecified-CT-ABDOMEN-93772",
    }
    for cid in cases.case_id:
        assert (folder / "imagesTr" / f"{cid}_0000.nii.gz").is_file()
        assert (folder / "labelsTr" / f"{cid}.nii.gz").is_file()
    assert dict(zip(cases.source_id, cases.patient_id, strict=True)) == {
        AUTOPET3[0]: "fdg_0168f65af8", AUTOPET3[1]: "fdg_0168f65af8",
        AUTOPET3[2]: "fdg_3a9c1e04b2",
    }  # fmt: skip
    assert autopet_patient_id(AUTOPET3[3]) == "psma_95b833d46f153cd2"


def test_true_collision_after_sanitising_is_refused(
    fdg_cohort: Path, tmp_path: Path, nnunet_dirs, capsys
) -> None:
    names = ["fdg_ab_01-01-2001-PET CT", "fdg_ab_01-01-2001-PET  CT", "fdg_ab_01-01-2001-PET-CT"]
    assert len({sanitize_case_id(n) for n in names}) == 1
    _autopet3_tree(fdg_cohort, tmp_path / "ap3", names)
    assert main(["convert", "autopet", "--input", str(tmp_path / "ap3"), "--tracer", "fdg",
                 "--no-organs", "--dataset-id", "705", "--name", "C", "-np", "1",
                 "--no-pbar"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "'fdg_ab_01-01-2001-PET-CT' occurs 3 times" in err and "after sanitising" in err
    assert not list(Path(nnunet_dirs["nnUNet_raw"]).glob("Dataset705_*"))


@pytest.mark.slow
def test_convert_predict_evaluate_find_every_case(
    autopet_tree, trained_fdg_model: dict, tmp_path: Path
) -> None:
    """The ids of lion convert, lion predict (folder and single SUV.nii.gz) and lion evaluate
    agree on an autoPET tree with single- and multi-study patients."""
    root, _ = autopet_tree
    folder = _convert(root, 706, "--no-organs")
    model = trained_fdg_model["model_dir"]
    sub = tmp_path / "sub"  # a folder with one two-study patient
    shutil.copytree(root / "studies" / "PETCT_02ba4b4d6b", sub / "PETCT_02ba4b4d6b")
    out = tmp_path / "pred"
    common = ["-m", str(model), "-f", "0", "-o", str(out), "--device", "cpu", "--disable-tta",
              "--no-pbar", "--json"]  # fmt: skip
    assert main(["predict", "-i", str(sub), *common]) == 0
    single = root / "studies" / "PETCT_0307a2d7c0"
    assert main(["predict", "-i", str(next(single.rglob("SUV.nii.gz"))), *common]) == 0
    gt = tmp_path / "gt"
    gt.mkdir()
    wanted = ["PETCT_0307a2d7c0"]
    wanted += [p.name[:-7] for p in (folder / "labelsTr").glob("PETCT_02ba4b4d6b_*.nii.gz")]
    for case in wanted:
        shutil.copy(folder / "labelsTr" / f"{case}.nii.gz", gt / f"{case}.nii.gz")
    assert len(wanted) == 3
    assert main(["evaluate", "--pred", str(out), "--gt", str(gt), "-o", str(tmp_path / "ev"),
                 "--no-pbar"]) == 0  # fmt: skip
    per_case = pd.read_csv(tmp_path / "ev" / "per_case.csv")
    assert sorted(per_case.case_id) == sorted(wanted)
    assert set(per_case.status) == {"ok"}  # every case found, none "missing"
    reports = {json.loads((out / c / "report.json").read_text())["case_id"] for c in wanted}
    assert reports == set(wanted)
    # the model was trained by the stock commands on lion convert's folds by patient:
    # lion plans install copied them and nnUNetv2_train read them
    name = trained_fdg_model["dataset_dir"].name
    pre = Path(__import__("os").environ["nnUNet_preprocessed"]) / name / "splits_final.json"
    raw_folds = json.loads((trained_fdg_model["dataset_dir"] / "splits_final.json").read_text())
    assert json.loads(pre.read_text()) == raw_folds
    log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
    assert f"Using splits from existing split file: {pre}" in log


def test_predict_discovery_names_studies_as_convert_does(autopet_tree) -> None:
    """Expected ids written out from the tree's construction: the patient's name for a single
    study, <patient>_<study> (spaces -> '-') for a patient with several; for the whole tree, a
    patient folder, and each SUV.nii.gz alone."""
    from lion_nnunet.dataset_conversion.autopet import discover_autopet
    from lion_nnunet.inference.predict import discover_cases

    root, _ = autopet_tree
    expected, k = {}, 0
    for patient, dates in TREE.items():
        for date in dates:
            study = root / "studies" / patient / _study_name(date, k)
            name = patient if len(dates) == 1 else f"{patient}_{_study_name(date, k)}"
            expected[study / "SUV.nii.gz"] = name.replace("  ", " ").replace(" ", "-")
            k += 1
    got = {Path(c.source): c.case_id for c in discover_cases(root / "studies")}
    assert got == expected
    for suv, cid in expected.items():
        assert [c.case_id for c in discover_cases(suv)] == [cid]
    patient_dir = root / "studies" / "PETCT_0117d7f11f"
    assert sorted(c.case_id for c in discover_cases(patient_dir)) == sorted(
        v for s, v in expected.items() if patient_dir in s.parents
    )
    converted = {c.pet: c.case_id for c in discover_autopet(root / "studies", None, "fdg")}
    assert converted == expected
