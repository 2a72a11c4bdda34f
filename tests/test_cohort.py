"""Cohort execution on Dask (``--cluster``): same outputs as one process, failures isolated.

One LocalCluster of 2 worker processes serves the module (``--cluster tcp://...``); predictions
come from a random-weights model with the LION architecture, inputs are phantom studies in the
autoPET layout. Expected outputs come from today's single-process path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET
from test_convert_dicom import dicom_tree  # noqa: F401  (the DICOM tree fixture)
from test_organs_run import fake_ts, weights  # noqa: F401  (TotalSegmentator's network replaced)

from lion_nnunet.cli import main
from lion_nnunet.cohort.cluster import MAX_RETRIES, ClusterOptions, slurm_cluster
from lion_nnunet.errors import LionError
from lion_nnunet.inference.model import make_random_model

GOOD = 6
BAD = "SYNFDG_0006"  # its SUV.nii.gz is truncated


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _outputs(out: Path) -> dict[str, int]:
    """Every file under ``out`` (but the cohort-wide tables and lion.log) by mtime (ns)."""
    skip = {"cohort.csv", "summary.csv", "lesions.csv", "lion.log"}
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in skip}  # fmt: skip


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory):
    """A LocalCluster of 2 worker processes (1 thread each), as ``--cluster local:2`` starts."""
    import dask
    from distributed import Client, LocalCluster

    from lion_nnunet.nnunet_env import CPU_FRIENDLY_ENV

    with pytest.MonkeyPatch.context() as mp:
        for key, value in CPU_FRIENDLY_ENV.items():  # the workers inherit the environment
            mp.setenv(key, value)
        with dask.config.set({"distributed.scheduler.allowed-failures": MAX_RETRIES}):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)  # fmt: skip
        client = Client(cluster)
        yield client
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort_model") / "Dataset991_RANDOM"
    return make_random_model(root / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
                             patch_size=(16, 16, 32), spacing=(16.0, 16.0, 16.0),
                             **SMALL_RANDOM_NET)  # fmt: skip


@pytest.fixture(scope="module")
def studies(fdg_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7 autoPET studies (SUV.nii.gz); the 7th truncated to half its bytes."""
    out = tmp_path_factory.mktemp("cohort_in") / "studies"
    suvs = sorted((fdg_cohort / "studies").rglob("SUV.nii.gz"))[: GOOD + 1]
    assert len(suvs) == GOOD + 1
    for suv in suvs:
        target = out / suv.parent.relative_to(fdg_cohort / "studies") / "SUV.nii.gz"
        target.parent.mkdir(parents=True)
        shutil.copy2(suv, target)
    bad = next(out.glob(f"{BAD}/*/SUV.nii.gz"))
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])
    return out


@pytest.fixture(scope="module")
def runs(studies: Path, model: Path, scheduler, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``lion predict`` in one process and on the cluster, over the same 7 studies."""
    root = tmp_path_factory.mktemp("cohort_runs")
    base = ["predict", "-i", str(studies), "-m", str(model), "-f", "0", "--device", "cpu",
            "--disable-tta", "--no-pbar"]  # fmt: skip
    out = {"single": root / "single", "dask": root / "dask", "studies": studies, "model": model}
    out["single_rc"] = main([*base, "-o", str(out["single"])])
    out["dask_rc"] = main([*base, "-o", str(out["dask"]), "--cluster", scheduler.scheduler.address])
    return out


def test_predict_on_dask_equals_single_process(runs: dict) -> None:
    single, dask = runs["single"], runs["dask"]
    cases = sorted(p.parent.name for p in single.glob("*/tumor.nii.gz"))
    assert len(cases) == GOOD and BAD not in cases
    assert sorted(p.parent.name for p in dask.glob("*/tumor.nii.gz")) == cases
    voxels = 0
    for case in cases:
        ours = _array(dask / case / "tumor.nii.gz")
        np.testing.assert_array_equal(ours, _array(single / case / "tumor.nii.gz"))
        voxels += int(ours.sum())
        one, many = (json.loads((d / case / "report.json").read_text()) for d in (single, dask))
        assert many["tmtv_ml"] == one["tmtv_ml"] and many["lesions"] == one["lesions"]
    assert voxels > 0  # random weights still mark some voxels tumor: the comparison has content
    assert len(pd.read_csv(dask / "summary.csv")) == GOOD


def test_truncated_case_failed_others_ok(runs: dict) -> None:
    assert runs["single_rc"] == 1 and runs["dask_rc"] == 1
    table = pd.read_csv(runs["dask"] / "cohort.csv", keep_default_na=False)
    assert list(table.columns) == ["case_id", "status", "attempts", "seconds", "worker", "error"]
    assert len(table) == GOOD + 1
    by_case = table.set_index("case_id")
    assert by_case.loc[BAD, "status"] == "failed"
    assert "SUV.nii.gz" in by_case.loc[BAD, "error"] and BAD in by_case.loc[BAD, "error"]
    ok = by_case.drop(index=BAD)
    assert (ok["status"] == "ok").all() and (ok["attempts"] == 1).all()
    assert (ok["error"] == "").all() and (ok["seconds"] > 0).all()
    assert not (runs["dask"] / BAD).exists()
    assert not list(runs["dask"].rglob(".*part*"))


def test_rerun_skips_done_cases_and_retries_failed(
    runs: dict, scheduler, fdg_cohort: Path, capsys: pytest.CaptureFixture
) -> None:
    dask, studies = runs["dask"], runs["studies"]
    before = _outputs(dask)
    assert len([k for k in before if k.endswith("report.json")]) == GOOD
    bad = next(studies.glob(f"{BAD}/*/SUV.nii.gz"))
    shutil.copy(fdg_cohort / "studies" / bad.relative_to(studies), bad)  # the whole file
    args = ["predict", "-i", str(studies), "-o", str(dask), "-m", str(runs["model"])]
    assert main([*args, "-f", "0", "--device", "cpu", "--disable-tta", "--no-pbar",
                 "--cluster", scheduler.scheduler.address, "--json"]) == 0  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    assert answer["predicted"] == [BAD] and len(answer["skipped"]) == GOOD
    after = _outputs(dask)
    assert {k: after[k] for k in before} == before  # nothing rewritten
    assert any(k.startswith(f"{BAD}/") for k in after)
    table = pd.read_csv(dask / "cohort.csv").set_index("case_id")
    assert table.loc[BAD, "status"] == "ok"
    assert (table.drop(index=BAD)["status"] == "skipped").all()
    assert (table.drop(index=BAD)["attempts"] == 0).all()


def test_overwrite_on_dask_rewrites_every_case(runs: dict, scheduler, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    out = tmp_path / "dask"
    shutil.copytree(runs["dask"], out)  # a copy: the other tests keep theirs
    done = sorted(p.parent.name for p in out.glob("*/report.json"))
    assert len(done) >= GOOD
    before = _outputs(out)
    args = ["predict", "-i", str(runs["studies"]), "-o", str(out), "-m", str(runs["model"]),
            "-f", "0", "--device", "cpu", "--disable-tta", "--no-pbar", "--json",
            "--cluster", scheduler.scheduler.address]  # fmt: skip
    # same settings: every done case predicted again, none skipped
    main([*args, "--overwrite"])
    answer = json.loads(capsys.readouterr().out)
    assert sorted(answer["predicted"]) == done and answer["skipped"] == []
    after = _outputs(out)
    for case in done:
        for name in ("report.json", "tumor.nii.gz", "mip.png"):
            key = f"{case}/{name}"
            assert after[key] > before[key], f"{key} not rewritten by --overwrite"
    table = pd.read_csv(out / "cohort.csv", keep_default_na=False).set_index("case_id")
    assert (table.loc[done, "status"] == "ok").all() and (table.loc[done, "attempts"] == 1).all()
    # other settings: refused without --overwrite, made with the new settings with it
    assert main([*args, "--min-volume-ml", "0.5"]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    main([*args, "--min-volume-ml", "0.5", "--overwrite"])
    answer = json.loads(capsys.readouterr().out)
    assert sorted(answer["predicted"]) == done
    for case in done:
        report = json.loads((out / case / "report.json").read_text())
        assert report["settings"]["min_volume_ml"] == 0.5
    table = pd.read_csv(out / "cohort.csv", keep_default_na=False).set_index("case_id")
    assert (table.loc[done, "status"] == "ok").all()


def test_task_finding_its_case_done_reports_skipped(runs: dict) -> None:
    """A task whose case is already done (another run into the same -o) says skipped, not ok."""
    from lion_nnunet.cohort.predict import PredictJob, predict_case
    from lion_nnunet.cohort.run import default_status
    from lion_nnunet.inference.options import PredictOptions
    from lion_nnunet.inference.predict import discover_cases

    case = next(c for c in discover_cases(runs["studies"]) if c.case_id != BAD)
    assert (runs["single"] / case.case_id / "report.json").is_file()
    options = PredictOptions(folds=("0",), device="cpu", use_mirroring=False, progress=False)
    before = _outputs(runs["single"])
    result = predict_case(PredictJob(case, str(runs["model"]), str(runs["single"]), options))
    assert default_status(result) == ("skipped", "")
    assert _outputs(runs["single"]) == before


# --- a worker killed mid-run -------------------------------------------------------------------


def gated_predict(item: tuple) -> dict:
    """``predict_case``; the victim's first try records its pid and waits to be killed."""
    from lion_nnunet.cohort.predict import predict_case

    job, gate = item
    marker = Path(gate) / f"{job.case.case_id}.pid"
    if job.case.case_id == Path(gate).name and not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(300)  # the test kills this process here
    return predict_case(job)


def test_killed_worker_case_retried_once(scheduler, model: Path, studies: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    import cloudpickle

    from lion_nnunet.cohort.predict import PredictJob
    from lion_nnunet.cohort.run import run_cohort, write_cohort_csv
    from lion_nnunet.inference.options import PredictOptions
    from lion_nnunet.inference.predict import discover_cases

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # gated_predict: by value
    cases = [c for c in discover_cases(studies) if c.case_id != BAD][:2]
    victim = cases[0].case_id
    gate = tmp_path / victim
    gate.mkdir()
    out = tmp_path / "out"
    options = PredictOptions(folds=("0",), device="cpu", use_mirroring=False, progress=False)
    items = [(PredictJob(c, str(model), str(out), options), str(gate)) for c in cases]
    pids_before = set(scheduler.run(os.getpid).values())  # {worker address: pid}
    killed: list[int] = []

    def kill_when_started() -> None:
        marker = gate / f"{victim}.pid"
        for _ in range(1200):
            if marker.is_file() and marker.read_text():
                pid = int(marker.read_text())
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    outcomes = run_cohort(scheduler, gated_predict, items, [c.case_id for c in cases], "predict",
                          progress=False)  # fmt: skip
    killer.join()
    assert killed and killed[0] in pids_before  # a worker of the cluster, by its pid
    write_cohort_csv(outcomes, out)
    table = pd.read_csv(out / "cohort.csv").set_index("case_id")
    assert (table["status"] == "ok").all(), table.to_dict()
    assert table.loc[victim, "attempts"] == 2
    assert (table.drop(index=victim)["attempts"] == 1).all()
    for case in cases:  # every case once, complete, nothing temporary left
        assert sorted(p.name for p in (out / case.case_id).iterdir()) == [
            "lesions.ctbl", "lesions.nii.gz", "mip.png", "mip_coronal.png", "mip_sagittal.png",
            "report.json", "tumor.nii.gz"]  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted([c.case_id for c in cases] +
                                                           ["cohort.csv"])  # fmt: skip


# --- conversion ------------------------------------------------------------------------------


def test_convert_on_dask_equals_single_process(
    fdg_cohort: Path, scheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = {}
    for name, extra in (("single", []), ("dask", ["--cluster", scheduler.scheduler.address])):
        monkeypatch.setenv("nnUNet_raw", str(tmp_path / name))
        assert main(["convert", "autopet", "--input", str(fdg_cohort / "studies"), "--organs",
                     str(fdg_cohort / "organs"), "--tracer", "fdg", "--dataset-id", "501",
                     "--name", "LION_FDG", "--no-pbar", *extra]) == 0  # fmt: skip
        written[name] = tmp_path / name / "Dataset501_LION_FDG"
    files = sorted(p.relative_to(written["single"]) for p in written["single"].rglob("*.nii.gz"))
    assert len(files) >= 2 * GOOD
    for rel in files:
        np.testing.assert_array_equal(
            _array(written["dask"] / rel), _array(written["single"] / rel)
        )
    for name in ("dataset.json", "splits_final.json"):
        assert (written["dask"] / name).read_text() == (written["single"] / name).read_text()
    table = pd.read_csv(written["dask"] / "cohort.csv")
    assert len(table) == len(files) // 2 and (table["status"] == "ok").all()


def test_convert_dicom_on_dask_equals_single_process(dicom_tree: dict, scheduler,  # noqa: F811
                                                     tmp_path: Path) -> None:  # fmt: skip
    args = ["convert", "dicom", "--input", str(dicom_tree["root"]), "--no-pbar"]
    assert main([*args, "--output", str(tmp_path / "single")]) == 1  # the MBq series refused
    assert main([*args, "--output", str(tmp_path / "dask"),
                 "--cluster", scheduler.scheduler.address]) == 1  # fmt: skip
    files = sorted(p.relative_to(tmp_path / "single")
                   for p in (tmp_path / "single").rglob("*.nii.gz"))  # fmt: skip
    assert len(files) == 5  # SUV, CTres, SEG of study 1; SUV, SEG of study 2
    assert sorted(p.relative_to(tmp_path / "dask")
                  for p in (tmp_path / "dask").rglob("*.nii.gz")) == files  # fmt: skip
    for rel in files:
        np.testing.assert_array_equal(_array(tmp_path / "dask" / rel),
                                      _array(tmp_path / "single" / rel))  # fmt: skip
    table = pd.read_csv(tmp_path / "dask" / "cohort.csv", keep_default_na=False)
    assert sorted(table["status"]) == ["failed", "ok", "ok"]
    failed = table[table["status"] == "failed"].iloc[0]
    assert failed["case_id"].startswith("P2") and "looks like MBq" in failed["error"]


def _use_fake_totalsegmentator(fake) -> None:
    """In a worker process: TotalSegmentator's network replaced, as the fixture does here."""
    import totalsegmentator.python_api as api

    api.totalsegmentator = fake


def test_organs_on_dask_equals_single_process(psma_cohort: Path, fake_ts, weights: Path,  # noqa: F811
                                              scheduler, tmp_path: Path) -> None:  # fmt: skip
    studies = psma_cohort / "studies"
    args = ["organs", "--input", str(studies), "--tracer", "psma", "--device", "cpu",
            "--weights", str(weights), "--no-pbar"]  # fmt: skip
    assert main([*args, "--output", str(tmp_path / "single")]) == 0
    scheduler.run(_use_fake_totalsegmentator, fake_ts)
    assert main([*args, "--output", str(tmp_path / "dask"),
                 "--cluster", scheduler.scheduler.address]) == 0  # fmt: skip
    files = sorted(p.relative_to(tmp_path / "single")
                   for p in (tmp_path / "single").rglob("*.nii.gz"))  # fmt: skip
    assert len(files) == 2 * len(list(studies.rglob("SUV.nii.gz"))) > 0
    assert sorted(p.relative_to(tmp_path / "dask")
                  for p in (tmp_path / "dask").rglob("*.nii.gz")) == files  # fmt: skip
    for rel in files:
        np.testing.assert_array_equal(_array(tmp_path / "dask" / rel),
                                      _array(tmp_path / "single" / rel))  # fmt: skip
    table = pd.read_csv(tmp_path / "dask" / "cohort.csv")
    assert len(table) == len(files) // 2 and (table["status"] == "ok").all()


# --- several GPUs ------------------------------------------------------------------------------


def _two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees 2 CUDA GPUs (this machine has none: the network itself runs on the CPU)."""
    import torch

    import lion_nnunet.inference.predict as predict_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    real = predict_module.resolve_device
    monkeypatch.setattr(predict_module, "resolve_device", lambda device: real("cpu"))


def test_default_cluster_on_two_gpus_without_dask_cuda_runs_here_on_one(
    model: Path,
    studies: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _two_gpus(monkeypatch)
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # `import dask_cuda` raises ImportError
    case = sorted(studies.glob("SYNFDG_0000/*/SUV.nii.gz"))[0]
    out = tmp_path / "out"
    assert main(["predict", "-i", str(case), "-o", str(out), "-m", str(model), "-f", "0",
                 "--device", "auto", "--disable-tta", "--no-pbar"]) == 0  # fmt: skip
    assert (out / "SYNFDG_0000" / "report.json").is_file()
    assert not (out / "cohort.csv").exists()  # this process, not a Dask worker
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("2 GPUs are visible and dask-cuda is not installed: the cases run in this "
               "process on one GPU (cuda:0)" in m for m in said), said  # fmt: skip
    # lion experiment opens its client directly: the same choice, said once
    from lion_nnunet.cohort.cluster import open_client

    caplog.clear()
    with open_client(ClusterOptions("local"), 2) as client:
        assert client is None
    assert ["dask-cuda is not installed" in r.getMessage() for r in caplog.records] == [True]


def test_default_cluster_on_two_gpus_with_dask_cuda_starts_one_worker_per_gpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import types

    from distributed import LocalCluster

    from lion_nnunet.cohort.cluster import open_client, visible_gpus

    _two_gpus(monkeypatch)
    started: list[int] = []

    def local_cuda_cluster(n_workers: int, threads_per_worker: int, dashboard_address):
        started.append(n_workers)  # dask-cuda's cluster, as threads here (no GPU to bind)
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                            processes=False, dashboard_address=None)  # fmt: skip

    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = local_cuda_cluster
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    gpus = visible_gpus("auto")
    assert gpus == 2
    with open_client(ClusterOptions("local", dashboard=False), gpus) as client:
        assert client is not None and len(client.scheduler_info()["workers"]) == 2
    assert started == [2]
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "2 GPUs are visible: one Dask worker per GPU (dask-cuda), 2 in all" in said


# --- TLS ---------------------------------------------------------------------------------------


def _tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM files), as ``Security.temporary()`` makes them
    in memory (made by the openssl command where the cryptography package is missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        from distributed.security import Security

        temporary = Security.temporary()
        cert.write_text(temporary.tls_ca_file)
        key.write_text(temporary.tls_client_key)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is available")
        import subprocess

        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=dask"],
                       check=True, capture_output=True)  # fmt: skip
    return cert, key


def test_tls_scheduler_runs_a_cohort_through_the_cluster_layer(
    model: Path, studies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    from distributed import LocalCluster
    from distributed.security import Security

    from lion_nnunet.nnunet_env import CPU_FRIENDLY_ENV

    cert, key = _tls_files(tmp_path / "tls")
    roles = {f"tls_{role}_{part}": str(path) for role in ("scheduler", "worker", "client")
             for part, path in (("cert", cert), ("key", key))}  # fmt: skip
    security = Security(tls_ca_file=str(cert), require_encryption=True, **roles)
    inputs = tmp_path / "in"
    for suv in sorted(studies.glob("SYNFDG_000[01]/*/SUV.nii.gz")):
        (inputs / suv.parent.parent.name).mkdir(parents=True)
        shutil.copy2(suv, inputs / suv.parent.parent.name / "SUV.nii.gz")
    for k, v in CPU_FRIENDLY_ENV.items():  # the workers inherit the environment
        monkeypatch.setenv(k, v)
    config = tmp_path / "tls.yaml"
    config.write_text(f"security:\n  tls_ca_file: {cert}\n  tls_client_cert: {cert}\n"
                      f"  tls_client_key: {key}\n")  # fmt: skip
    base = ["predict", "-i", str(inputs), "-m", str(model), "-f", "0", "--device", "cpu",
            "--disable-tta", "--no-pbar"]  # fmt: skip
    assert main([*base, "-o", str(tmp_path / "single")]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tls://",
                      security=security, dashboard_address=None) as cluster:  # fmt: skip
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        capsys.readouterr()
        # no certificate: the scheduler refuses the connection, in one sentence
        assert main([*base, "-o", str(tmp_path / "refused"), "--cluster", address]) == 1
        assert (
            "--cluster tls://...: no TLS certificates; give --cluster-config FILE with a "
            "security: section" in capsys.readouterr().err
        )
        other, _ = _tls_files(tmp_path / "other")  # certificates the scheduler does not trust
        wrong = tmp_path / "wrong.yaml"
        wrong.write_text(f"security:\n  tls_ca_file: {other}\n  tls_client_cert: {other}\n"
                         f"  tls_client_key: {tmp_path / 'other' / 'key.pem'}\n")  # fmt: skip
        assert main([*base, "-o", str(tmp_path / "refused"), "--cluster", address,
                     "--cluster-config", str(wrong)]) == 1  # fmt: skip
        err = capsys.readouterr().err
        assert f"--cluster {address}: cannot connect to a Dask scheduler there (TLS" in err
        assert "check the address and the certificates" in err
        assert not list((tmp_path / "refused").glob("*/report.json"))
        assert main([*base, "-o", str(tmp_path / "tls"), "--cluster", address,
                     "--cluster-config", str(config)]) == 0  # fmt: skip
    table = pd.read_csv(tmp_path / "tls" / "cohort.csv", keep_default_na=False)
    single = sorted(p.parent.name for p in (tmp_path / "single").glob("*/report.json"))
    assert len(single) == 2 and sorted(table["case_id"]) == single
    assert (table["status"] == "ok").all() and (table["worker"] != "").all()
    for case in table["case_id"]:
        np.testing.assert_array_equal(
            _array(tmp_path / "tls" / case / "tumor.nii.gz"),
            _array(tmp_path / "single" / case / "tumor.nii.gz"),
        )


def test_slurm_cluster_talks_tls_with_the_config_certificates(tmp_path: Path) -> None:
    cert, key = _tls_files(tmp_path / "tls")
    config = tmp_path / "slurm.yaml"
    config.write_text(SLURM_YAML + f"security:\n  tls_ca_file: {cert}\n  tls_worker_cert: {cert}\n"
                      f"  tls_worker_key: {key}\n  tls_scheduler_cert: {cert}\n"
                      f"  tls_scheduler_key: {key}\n  tls_client_cert: {cert}\n"
                      f"  tls_client_key: {key}\n")  # fmt: skip
    cluster = slurm_cluster(config, scheduler_options={"dashboard_address": ":0"})
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    assert address.startswith("tls://")
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert f"{address} " in worker or worker.split()[3] == address
    for flag, path in (("--tls-ca-file", cert), ("--tls-cert", cert), ("--tls-key", key)):
        assert f"{flag} {path}" in worker


def test_slurm_default_is_temporary_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "slurm.yaml"
    config.write_text(SLURM_YAML)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        import cryptography  # noqa: F401
    except ImportError:  # Security.temporary() needs it: the sentence says how to go on
        with pytest.raises(LionError, match="needs the cryptography package: pip install "
                           "cryptography, or give certificate files"):  # fmt: skip
            slurm_cluster(config, scheduler_options={"dashboard_address": ":0"})
        return
    cluster = slurm_cluster(config, scheduler_options={"dashboard_address": ":0"})
    try:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://")
    finally:
        cluster.close()
    shared = tmp_path / "home" / ".lion" / "dask"
    assert "--tls-ca-file " + str(shared) in script
    assert shared.stat().st_mode & 0o777 == 0o700


# --- cluster specs -----------------------------------------------------------------------------

SLURM_YAML = """\
jobqueue:
  slurm:
    queue: gpu
    account: radiology
    cores: 8
    processes: 1
    memory: 64GB
    walltime: "04:00:00"
    job_extra_directives: ["--gres=gpu:1"]
    job_script_prologue:
      - source /opt/envs/lion/bin/activate
      - export nnUNet_results=/data/nnUNet_results
"""


def test_slurm_job_script_from_cluster_config(tmp_path: Path) -> None:
    config = tmp_path / "slurm.yaml"
    config.write_text(SLURM_YAML + "security: false\n")  # TLS: the tests below
    options = ClusterOptions("slurm", config, max_workers=4)
    cluster = slurm_cluster(options.config, scheduler_options={"dashboard_address": ":0"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    assert "#SBATCH -p gpu" in lines
    assert "#SBATCH --gres=gpu:1" in lines
    assert "#SBATCH -A radiology" in lines
    assert "#SBATCH --mem=60G" in lines  # dask-jobqueue: 64 GB = 59.6 GiB, rounded
    assert "#SBATCH -t 04:00:00" in lines
    assert "source /opt/envs/lion/bin/activate" in lines
    assert lines.index("source /opt/envs/lion/bin/activate") < next(
        i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "slurm"], "needs --cluster-config"),
        (["--cluster", "local:0"], "local:N with N >= 1"),
        (["--cluster", "lokal"], "expected local, local:N"),
        (["--cluster", "local:2", "--cluster-config", "x.yaml"], "is for --cluster slurm"),
    ],
)
def test_bad_cluster_spec_is_named(args: list[str], message: str) -> None:
    with pytest.raises(LionError, match=message):
        ClusterOptions(args[1], Path(args[3]) if len(args) > 2 else None)


def test_malformed_cluster_spec_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "-i", "in", "-o", "out", "-m", "fdg", "--cluster", "lokal:2"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--cluster: expected local, local:N, tls://HOST:PORT, tcp://HOST:PORT or slurm" in err


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ("  tls_ca_file: {cert}\n  tls_cert: {cert}\n", "unknown key(s) tls_cert; expected"),
        ("  tls_ca_file: {missing}\n", "file(s) not found: tls_ca_file {missing}"),
        (" false", "says security: false, but --cluster tls://127.0.0.1:1 needs TLS"),
    ],
)
def test_bad_security_section_is_one_sentence(tmp_path: Path, security: str, message: str) -> None:
    from lion_nnunet.cohort.cluster import open_client

    cert = tmp_path / "cert.pem"
    cert.write_text("not read before the checks")
    missing = tmp_path / "none.pem"
    config = tmp_path / "tls.yaml"
    config.write_text("security:" + ("\n" if security.startswith("  ") else "")
                      + security.format(cert=cert, missing=missing) + "\n")  # fmt: skip
    with (
        pytest.raises(LionError, match=re.escape(message.format(missing=missing))),
        open_client(ClusterOptions("tls://127.0.0.1:1", config)),
    ):
        pass


# --- what the console says -----------------------------------------------------------------------


def test_cluster_failure_said_once_without_dicts(
    fdg_cohort: Path, model: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """A truncated case on a cluster ``lion predict`` starts (``--cluster local:1``): its
    worker's, the client's and the command's output together name it once, with its reason.

    capfd, not capsys: the worker is another process writing to the same terminal.
    """
    one = tmp_path / "studies"
    shutil.copytree(fdg_cohort / "studies" / BAD, one / BAD)
    (suv,) = one.glob(f"{BAD}/*/SUV.nii.gz")
    suv.write_bytes(suv.read_bytes()[: suv.stat().st_size // 2])
    assert main(["predict", "-i", str(one), "-o", str(tmp_path / "out"), "-m", str(model),
                 "-f", "0", "--device", "cpu", "--disable-tta", "--no-pbar",
                 "--cluster", "local:1"]) == 1  # fmt: skip
    console = "".join(capfd.readouterr())
    reason = "the PET file is truncated"
    assert console.count(reason) == 1, console
    (line,) = [line for line in console.splitlines() if reason in line]
    assert line.startswith(f"  - {BAD}: ") and f"{BAD}/" in line  # the case, then its file
    assert "1 case(s) not predicted, 0 predicted" in console
    assert "{'" not in console and "['" not in console and "None" not in console
    table = pd.read_csv(tmp_path / "out" / "cohort.csv", keep_default_na=False)
    assert table["case_id"].tolist() == [BAD] and reason in table.loc[0, "error"]
