"""Small autoPET-like studies for the click tests, rebuilt bit for bit from a fixed recipe.

The official autoPET IV click simulator and metrics script (lab-midas/autoPETCTIV) were run once
on exactly these volumes; their outputs are stored in ``tests/data/interactive/`` (provenance in
its README.md). The recipe uses only ``np.random.RandomState`` (whose stream numpy keeps fixed)
and elementwise arithmetic, and :data:`VOXEL_SHA256` pins the result: if a numpy release ever
changed a voxel, the tests say so instead of comparing the stored clicks with other volumes.

Arrays are in nibabel's axis order (i, j, k) = (x, y, z), as the official scripts read them.
PET values are SUV-like (float32, multiples of 1/64): a body of SUV ~1 with noise, hot organs
(brain, heart, kidneys, bladder; PSMA: salivary glands, kidneys, liver, spleen) and lesions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (40, 32, 64)  # x, y, z voxels
SPACING = (4.0, 4.0, 3.0)  # mm
#: nibabel affine (RAS mm): voxel (i, j, k) -> (ORIGIN + i*4, ORIGIN + j*4, ORIGIN + k*3)
ORIGIN = (-80.0, -60.0, -900.0)


@dataclass(frozen=True)
class Study:
    case_id: str
    tracer: str
    seed: int
    lesions: int  # round lesions besides the fixed ones of the recipe
    thin_lesion: bool  # a one-voxel-thick plate (its distance transform is flat)


STUDIES = (
    Study("PETCT_0af7ffe12a_2002-10-19", "fdg", 11, 16, False),  # more lesions than the budget
    Study("PETCT_1b1f2e9c3d_2005-03-12", "fdg", 12, 2, True),  # boundary clicks fill the budget
    Study("PETCT_2c9d3e4f5a_2011-07-30", "fdg", 13, 0, False),  # negative: background clicks only
    Study("psma_95b833d46f153cd2_2018-04-16", "psma", 14, 4, False),
)

#: Hot organs: (centre as a fraction of the shape, radii in voxels, SUV range).
ORGANS = {
    "fdg": [
        ((0.5, 0.5, 0.92), (7, 6, 4), (6.0, 9.0)),  # brain
        ((0.55, 0.45, 0.70), (5, 4, 4), (3.0, 6.0)),  # heart
        ((0.35, 0.55, 0.45), (3, 2, 4), (2.5, 4.0)),  # kidney left
        ((0.65, 0.55, 0.45), (3, 2, 4), (2.5, 4.0)),  # kidney right
        ((0.5, 0.5, 0.12), (4, 3, 3), (8.0, 20.0)),  # bladder
    ],
    "psma": [
        ((0.4, 0.5, 0.93), (2, 2, 2), (8.0, 14.0)),  # parotid left
        ((0.6, 0.5, 0.93), (2, 2, 2), (8.0, 14.0)),  # parotid right
        ((0.35, 0.55, 0.45), (3, 2, 4), (15.0, 30.0)),  # kidney left
        ((0.65, 0.55, 0.45), (3, 2, 4), (15.0, 30.0)),  # kidney right
        ((0.4, 0.5, 0.58), (6, 5, 5), (4.0, 6.0)),  # liver
        ((0.68, 0.5, 0.6), (3, 3, 3), (5.0, 8.0)),  # spleen
        ((0.5, 0.5, 0.12), (4, 3, 3), (20.0, 40.0)),  # bladder
    ],
}

#: sha256 of the voxel bytes (PET float32, label uint8, the 11 stacked uint8 step predictions;
#: C order of the (x, y, z) arrays) of the volumes the official scripts ran on.
VOXEL_SHA256: dict[str, str] = json.loads(
    (Path(__file__).parent / "data" / "interactive" / "voxel_sha256.json").read_text()
)


def _ellipsoid(centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    i, j, k = np.indices(SHAPE, dtype=np.float64)
    d = ((i - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2
    return d + ((k - centre[2]) / radii[2]) ** 2 <= 1.0


def make_study(study: Study) -> tuple[np.ndarray, np.ndarray]:
    """(PET SUV float32, tumor label uint8 {0, 1}), both (x, y, z), for one study."""
    rng = np.random.RandomState(study.seed)
    shape = np.array(SHAPE, dtype=np.float64)
    body = _ellipsoid(shape / 2 - 0.5, np.array([17.0, 12.0, 40.0]))
    pet = np.where(body, 1.0, 0.02)
    for centre, radii, suv in ORGANS[study.tracer]:
        organ = _ellipsoid(np.array(centre) * shape, np.array(radii, dtype=np.float64))
        pet[organ] = rng.uniform(*suv)
    label = np.zeros(SHAPE, dtype=np.uint8)
    for _ in range(study.lesions):
        radii = rng.uniform(1.0, 2.5 if study.lesions > 8 else 3.5, size=3)
        centre = np.array([rng.uniform(10, 30), rng.uniform(9, 23), rng.uniform(8, 56)])
        lesion = _ellipsoid(centre, radii) & body
        pet[lesion] = pet[lesion] * rng.uniform(2.0, 6.0) + rng.uniform(1.0, 4.0)
        label[lesion] = 1
    if study.thin_lesion:  # a plate one voxel thick in z: every voxel is on its boundary
        label[14:19, 12:16, 30] = 1
        pet[14:19, 12:16, 30] = 7.0
        label[26, 20, 20] = 1  # and a single-voxel lesion
        pet[26, 20, 20] = 9.0
    if study.tracer == "psma":  # one isolated hot voxel: a background component with a flat
        pet[12, 10, 40] = 45.0  # distance transform (the official simulator's odd branch)
    noise = rng.normal(0.0, 1.0, size=SHAPE) * np.sqrt(pet) * 0.15
    pet = np.clip(pet + noise, 0.0, None)
    pet = (np.round(pet * 64.0) / 64.0).astype(np.float32)
    return pet, label


def affine() -> np.ndarray:
    """The studies' nibabel affine (RAS mm, no rotation)."""
    out = np.diag([*SPACING, 1.0])
    out[:3, 3] = ORIGIN
    return out


def voxel_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write_studies(
    labels_dir: Path, images_dir: Path, pet_channel: str = "_0000", studies=STUDIES
) -> list[Study]:
    """Write ``labels_dir/<case>.nii.gz`` and ``images_dir/<case><pet_channel>.nii.gz``.

    Raises AssertionError when a rebuilt volume differs from the one the official scripts saw.
    """
    labels_dir.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    for study in studies:
        pet, label = make_study(study)
        for name, array in (("pet", pet), ("label", label)):
            expected = VOXEL_SHA256.get(f"{study.case_id}:{name}")
            if expected is not None:
                assert voxel_sha256(array) == expected, (
                    f"{study.case_id}: the rebuilt {name} differs from the volume the official "
                    "scripts ran on (numpy changed?); the stored expected values do not apply"
                )
        nib.save(nib.Nifti1Image(label, affine()), labels_dir / f"{study.case_id}.nii.gz")
        nib.save(
            nib.Nifti1Image(pet, affine()), images_dir / f"{study.case_id}{pet_channel}.nii.gz"
        )
    return list(studies)


#: Where the step predictions put their false positives (x, y, z voxel centres, radius 2):
#: inside the body, clear of every study's lesions (checked in make_steps).
FALSE_POSITIVES = ((8, 16, 10), (31, 16, 10), (20, 8, 4))
STEPS = 11  # predictions after 0..10 clicks, as autoPET IV scores them


def make_steps(study: Study, steps: int = STEPS) -> list[np.ndarray]:
    """Predictions (uint8 {0, 1}, (x, y, z)) after 0..steps-1 clicks that get better click by click.

    Step 0 finds every other lesion (26-connected), over-segmented by one voxel, and three false
    positives; each step adds the next missed lesion, removes a false positive at steps 2, 4 and 6,
    and from step 5 on the lesions are no longer dilated.
    """
    from scipy import ndimage

    _, label = make_study(study)
    lesions, n = ndimage.label(label, structure=np.ones((3, 3, 3)))
    fps = [_ellipsoid(np.array(c, dtype=np.float64), np.full(3, 2.0)) for c in FALSE_POSITIVES]
    assert not any((fp & (label > 0)).any() for fp in fps)
    found = [i for i in range(1, n + 1) if i % 2 == 1]
    missed = [i for i in range(1, n + 1) if i % 2 == 0]
    out = []
    for step in range(steps):
        seen = found + missed[:step]
        pred = np.isin(lesions, seen)
        if step < 5:
            pred = ndimage.binary_dilation(pred)
        for index, fp in enumerate(fps):
            if step < 2 * (index + 1):
                pred |= fp
        if step >= 5 and found:
            pred |= _touching(pred, label, lesions == found[0])
        out.append(pred.astype(np.uint8))
    return out


def _touching(pred: np.ndarray, label: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """Two false-positive voxels next to a found lesion: one sharing only an edge with it (its
    own component at 6-connectivity only), one sharing only a corner (its own component at 6
    and 18, merged at 26). So the autoPET FP volume (18-connected) counts the second alone."""
    import cc3d

    def parts(mask: np.ndarray) -> list[int]:
        return [int(cc3d.connected_components(mask, connectivity=c).max()) for c in (6, 18, 26)]

    steps = [np.array(o) for o in itertools.product((-1, 0, 1), repeat=3)]
    edges = [o for o in steps if np.abs(o).sum() == 2]
    corners = [o for o in steps if np.abs(o).sum() == 3]
    current = pred.copy()
    # the new components the voxel must make at 6, 18 and 26
    for offsets, new in ((edges, [1, 0, 0]), (corners, [1, 1, 0])):
        before = parts(current)
        lesion_voxels = np.argwhere(lesion & pred)  # C order: deterministic
        for p, offset in itertools.product(lesion_voxels, offsets):
            q = tuple(int(v) for v in p + offset)
            if not all(0 <= v < s for v, s in zip(q, SHAPE, strict=True)) or label[q]:
                continue
            trial = current.copy()
            trial[q] = True
            if [a - b for a, b in zip(parts(trial), before, strict=True)] == new:
                current = trial
                break
        else:
            raise AssertionError("no voxel next to the lesion fits")
    return current & ~pred


def write_steps(steps_dir: Path, studies=STUDIES) -> None:
    """``steps_dir/<case>_pred<i>.nii.gz``, the official evaluation script's naming."""
    steps_dir.mkdir(parents=True, exist_ok=True)
    for study in studies:
        steps = make_steps(study)
        assert voxel_sha256(np.stack(steps)) == VOXEL_SHA256[f"{study.case_id}:steps"], (
            f"{study.case_id}: the rebuilt step predictions differ from the official run's"
        )
        for step, pred in enumerate(steps):
            path = steps_dir / f"{study.case_id}_pred{step}.nii.gz"
            nib.save(nib.Nifti1Image(pred, affine()), path)
