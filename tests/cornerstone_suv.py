"""SUV by an independent implementation: @cornerstonejs/calculate-suv 1.1.0 run in node.

cornerstone's calculate-suv (MIT, github.com/cornerstonejs/calculate-suv) is QIBA's SUV
pseudo-code in TypeScript, used by the OHIF viewer. ``tests/node/install.sh`` (run by
``make test``) installs it into ``tests/.node`` (git-ignored); without node or the package the
tests that need it skip, naming the script.

What it does, read from its source (``src/calculateScanTimes.ts``,
``src/calculateSUVScalingFactors.ts``), so that a test knows where it differs from lion by design:
- scan time: SeriesDate/Time when not after the earliest AcquisitionDate/Time; else GE's private
  post-injection date-time (0009,100D); else the earliest AcquisitionDate/Time. QIBA's Siemens
  rule (acquisition - FrameReferenceTime + T_ave) is commented out there ("TODO"), and it knows
  no Siemens private tag (0071,1022);
- DecayCorrection is not read: ADMIN and NONE series are decayed like START;
- an injection time without date is put on the SeriesDate, midnight not considered;
- Units GML is taken as SUVbw whatever SUVType says;
- Philips CNTS: the SUV scale factor, else the activity concentration factor, as QIBA.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

TESTS = Path(__file__).parent
PACKAGE = TESTS / ".node" / "node_modules" / "@cornerstonejs" / "calculate-suv"
RUNNER = TESTS / "node" / "calculate_suv.js"
VERSION = "1.1.0"


class CornerstoneError(RuntimeError):
    """calculate-suv threw (its message)."""


def skip_reason() -> str | None:
    """Why calculate-suv cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed: the SUV check against @cornerstonejs/calculate-suv skips"
    try:
        version = json.loads((PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return (
            f"@cornerstonejs/calculate-suv is not installed in {PACKAGE.parent.parent}: run "
            "tests/node/install.sh (make test does; needs npm and the registry)"
        )
    if version != VERSION:
        return (
            f"{PACKAGE} is version {version}, the tests expect {VERSION}: run tests/node/install.sh"
        )
    return None


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # implicit VR private element
        value = value.decode("ascii", "replace").strip("\x00 ")
    text = str(value).strip()
    return text or None


def _number(value) -> float | None:
    text = _text(value)
    return float(text) if text is not None else None


def _private(ds, group: int, creator: str, offset: int):
    """A private element by its creator, else (as the IBSI DROs write it) at block 0x10."""
    try:
        return ds.private_block(group, creator)[offset].value
    except KeyError:
        element = ds.get((group, 0x1000 + offset))
        return None if element is None or (group, 0x0010) in ds else element.value


def instance(ds) -> dict:
    """calculate-suv's input for one slice (its ``InstanceMetadata``): DICOM keywords, dates
    YYYYMMDD, times HHMMSS(.FFFFFF) and date-times as strings, numbers as numbers."""
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    corrected = ds.get("CorrectedImage", [])
    out = {
        "CorrectedImage": [corrected] if isinstance(corrected, str) else list(corrected),
        "Units": _text(ds.get("Units")),
        "DecayCorrection": _text(ds.get("DecayCorrection")),
        "RadionuclideHalfLife": _number(rp.get("RadionuclideHalfLife")),
        "RadionuclideTotalDose": _number(rp.get("RadionuclideTotalDose")),
        "PatientWeight": _number(ds.get("PatientWeight")),
        "SeriesDate": _text(ds.get("SeriesDate")),
        "SeriesTime": _text(ds.get("SeriesTime")),
        "AcquisitionDate": _text(ds.get("AcquisitionDate")),
        "AcquisitionTime": _text(ds.get("AcquisitionTime")),
        "RadiopharmaceuticalStartTime": _text(rp.get("RadiopharmaceuticalStartTime")),
        "RadiopharmaceuticalStartDateTime": _text(rp.get("RadiopharmaceuticalStartDateTime")),
        "FrameReferenceTime": _number(ds.get("FrameReferenceTime")),
        "ActualFrameDuration": _number(ds.get("ActualFrameDuration")),
        "PatientSize": _number(ds.get("PatientSize")),
        "PatientSex": _text(ds.get("PatientSex")),
        "GEPrivatePostInjectionDateTime": _text(_private(ds, 0x0009, "GEMS_PETD_01", 0x0D)),
    }
    suv_factor = _number(_private(ds, 0x7053, "Philips PET Private Group", 0x00))
    activity_factor = _number(_private(ds, 0x7053, "Philips PET Private Group", 0x09))
    if suv_factor is not None or activity_factor is not None:
        out["PhilipsPETPrivateGroup"] = {
            "SUVScaleFactor": suv_factor,
            "ActivityConcentrationScaleFactor": activity_factor,
        }
    return {k: v for k, v in out.items() if v is not None}


def cornerstone_suv(files: list[Path]) -> np.ndarray:
    """SUVbw (z, y, x) of a single-frame PET series by calculate-suv: its per-slice factor x
    stored value x RescaleSlope + RescaleIntercept, slices in ImagePositionPatient z order (the
    test series have identity orientation). Raises CornerstoneError when it throws."""
    import pydicom

    datasets = [pydicom.dcmread(f) for f in files]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    done = subprocess.run(
        ["node", str(RUNNER)],
        input=json.dumps([instance(ds) for ds in datasets]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise CornerstoneError(done.stderr.strip())
    factors = json.loads(done.stdout)
    slices = []
    for ds, factor in zip(datasets, factors, strict=True):
        value = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1)
        slices.append((value + float(ds.get("RescaleIntercept", 0) or 0)) * factor)
    return np.stack(slices)
