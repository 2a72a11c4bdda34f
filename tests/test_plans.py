"""LION plans templates, `lion plans install`, and `lion splits`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from lion_nnunet.cli import main
from lion_nnunet.dataset_conversion.autopet import discover_autopet
from lion_nnunet.dataset_conversion.raw_dataset import convert_cohort
from lion_nnunet.labels import get_label_set
from lion_nnunet.plans.templates import DEFAULTS, build_plans, load_template


@pytest.mark.parametrize("tracer", sorted(DEFAULTS))
def test_shipped_templates_match_the_builder(tracer: str) -> None:
    assert load_template(tracer) == json.loads(json.dumps(build_plans(tracer))), (
        "regenerate with: python -m lion_nnunet.plans.templates"
    )
    config = load_template(tracer)["configurations"]["3d_fullres"]
    assert config["normalization_schemes"] == ["CTNormalization"]
    assert config["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    strides = config["architecture"]["arch_kwargs"]["strides"]
    for axis, size in enumerate(config["patch_size"]):
        total = 1
        for s in strides:
            total *= s[axis]
        assert size % total == 0


@pytest.fixture
def fingerprinted(fdg_cohort: Path, nnunet_dirs: dict) -> int:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    cases = discover_autopet(
        fdg_cohort / "studies", fdg_cohort / "organs", "fdg", fdg_cohort / "cases.csv"
    )
    convert_cohort(cases, 611, "Plans", get_label_set("fdg"), progress=False)
    return 611, extract_fingerprint_dataset


def test_install_needs_a_fingerprint_then_rewrites_dataset_fields(fingerprinted, capsys) -> None:
    did, extract = fingerprinted
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg"]) == 1
    assert "run nnUNetv2_extract_fingerprint -d 611 first" in capsys.readouterr().err
    extract(did, num_processes=1)
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "MyLION",
                 "--patch-size", "64", "32", "32", "--spacing", "dataset"]) == 0  # fmt: skip
    folder = Path(__import__("os").environ["nnUNet_preprocessed"]) / "Dataset611_Plans"
    plans = json.loads((folder / "MyLION.json").read_text())
    fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text())
    assert plans["dataset_name"] == "Dataset611_Plans" and plans["plans_name"] == "MyLION"
    config = plans["configurations"]["3d_fullres"]
    assert config["data_identifier"] == "MyLION_3d_fullres"
    assert config["patch_size"] == [64, 32, 32] and config["spacing"] == [6.0, 6.0, 6.0]
    assert config["architecture"]["arch_kwargs"]["n_stages"] == 4
    assert (
        plans["foreground_intensity_properties_per_channel"]
        == (fingerprint["foreground_intensity_properties_per_channel"])
    )
    assert (folder / "dataset.json").is_file()
    # same content again is fine; different content needs --overwrite
    assert main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "MyLION",
                 "--patch-size", "64", "32", "32", "--spacing", "dataset"]) == 0  # fmt: skip
    assert (
        main(["plans", "install", "-d", str(did), "--tracer", "fdg", "--plans-name", "MyLION"]) == 1
    )
    assert "use --overwrite" in capsys.readouterr().err


def test_splits_nested_stratified_with_fixed_validation(tmp_path, nnunet_dirs, capsys) -> None:
    from lion_nnunet.dataset_conversion.phantoms import make_cohort

    make_cohort(tmp_path, "fdg", 30, seed=3, progress=False)
    cases = discover_autopet(tmp_path / "studies", None, "fdg", tmp_path / "cases.csv")
    convert_cohort(cases, 612, "Splits", get_label_set("fdg"), with_organs=False, progress=False)
    assert main(["splits", "-d", "612", "--subset-sizes", "8", "16", "24", "--val-size", "6"]) == 0
    folder = Path(nnunet_dirs["nnUNet_preprocessed"]) / "Dataset612_Splits"
    splits = json.loads((folder / "splits_final.json").read_text())
    assert [len(s["train"]) for s in splits] == [8, 16, 24]
    assert all(s["val"] == splits[0]["val"] for s in splits) and len(splits[0]["val"]) == 6
    for small, big in itertools.pairwise(splits):
        assert set(small["train"]) < set(big["train"])
    assert not set(splits[-1]["train"]) & set(splits[0]["val"])
    table = pd.read_csv(folder / "lion_splits.csv")
    assert set(table.columns) >= {"fold", "subset_size", "role", "case_id", "disease"}
    first = table[(table.fold == 0) & (table.role == "train")]
    assert first.disease.nunique() >= 3  # 8 cases drawn across the 4 diseases
    assert main(["splits", "-d", "612", "--subset-sizes", "8", "40"]) == 1
    assert "exceeds the training pool" in capsys.readouterr().err
    before = (folder / "splits_final.json").read_text()
    assert main(["splits", "-d", "612", "--subset-sizes", "4", "--pool", "lymphoma"]) == 1
    assert "use --overwrite" in capsys.readouterr().err
    assert (folder / "splits_final.json").read_text() == before  # refused: nothing lost
    assert main(["splits", "-d", "612", "--subset-sizes", "4", "--pool", "lymphoma",
                 "--overwrite"]) == 0  # fmt: skip
    assert json.loads((folder / "splits_final.previous.json").read_text()) == json.loads(before)
    table = pd.read_csv(folder / "lion_splits.csv")
    assert set(table[table.role == "train"].disease) == {"lymphoma"}
    assert main(["splits", "-d", "612", "--subset-sizes", "4", "--stratify", "site"]) == 1
    assert "no column 'site'" in capsys.readouterr().err
