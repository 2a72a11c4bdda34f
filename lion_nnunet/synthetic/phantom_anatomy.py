"""A simple whole-body model for synthetic PET: body outline, organs, lesion regions, rendering.

Body coordinates are millimetres in a standard adult: ``zb`` height above the soles (0..1750,
vertex at 1750), ``xb`` towards the patient's left, ``yb`` towards posterior (LPS, as DICOM and
SimpleITK). A :class:`Placement` scales and shifts that body into a physical frame; shapes are then
rendered on any image grid (PET or CT) straight from their physical definition, so organ masks on
a CT grid and activity on the PET grid describe the same anatomy without resampling.

Array axis order: rendered masks are numpy arrays indexed (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERTEX_MM = 1750.0


@dataclass(frozen=True)
class Grid:
    """An image grid: numpy shape (z, y, x), spacing and origin in mm as (x, y, z)."""

    shape_zyx: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]

    def axis_mm(self, axis_xyz: int) -> np.ndarray:
        """Physical coordinates (mm) of voxel centres along one axis (0=x, 1=y, 2=z)."""
        n = self.shape_zyx[2 - axis_xyz]
        return self.origin_xyz[axis_xyz] + self.spacing_xyz[axis_xyz] * np.arange(n)

    def index_range(self, axis_xyz: int, lo_mm: float, hi_mm: float) -> slice:
        """Voxel index slice covering physical interval [lo_mm, hi_mm] on one axis (clipped)."""
        o, s = self.origin_xyz[axis_xyz], self.spacing_xyz[axis_xyz]
        n = self.shape_zyx[2 - axis_xyz]
        lo = max(0, int(np.floor((lo_mm - o) / s)))
        hi = min(n, int(np.ceil((hi_mm - o) / s)) + 1)
        return slice(lo, max(lo, hi))


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid in body mm; ``shell`` > 0 keeps only the outer fraction (colon)."""

    center: tuple[float, float, float]  # (xb, yb, zb)
    radii: tuple[float, float, float]
    shell: float = 0.0


@dataclass(frozen=True)
class Cylinder:
    """Elliptic cylinder along the body axis, from zb ``z0`` to ``z1``."""

    center_xy: tuple[float, float]
    radii_xy: tuple[float, float]
    z0: float
    z1: float


Shape = Ellipsoid | Cylinder

BODY: tuple[Shape, ...] = (
    Ellipsoid((0, 0, 1630), (80, 100, 120)),  # head
    Cylinder((0, 0), (55, 55), 1450, 1540),  # neck
    Cylinder((0, 0), (170, 110), 830, 1470),  # trunk
    Cylinder((-90, 0), (75, 75), 0, 860),  # right leg (xb < 0 = patient right)
    Cylinder((90, 0), (75, 75), 0, 860),  # left leg
)
LUNGS: tuple[Shape, ...] = (
    Ellipsoid((-80, 10, 1260), (65, 85, 130)),
    Ellipsoid((80, 10, 1260), (65, 85, 130)),
)
BONE: tuple[Shape, ...] = (
    Cylinder((0, 80), (18, 18), 880, 1480),  # spine
    Ellipsoid((-100, 40, 900), (40, 30, 50)),  # iliac wings
    Ellipsoid((100, 40, 900), (40, 30, 50)),
)

#: TotalSegmentator v2 class name -> shape, in drawing order (later ones win where they overlap).
ORGANS: dict[str, Shape] = {
    "colon": Ellipsoid((0, -20, 980), (125, 75, 115), shell=0.25),
    "small_bowel": Ellipsoid((0, -35, 960), (85, 45, 65)),
    "duodenum": Ellipsoid((-25, -5, 1075), (22, 20, 35)),
    "stomach": Ellipsoid((60, -40, 1145), (45, 35, 50)),
    "liver": Ellipsoid((-75, 0, 1125), (95, 80, 80)),
    "spleen": Ellipsoid((105, 45, 1130), (32, 30, 55)),
    "kidney_right": Ellipsoid((-75, 55, 1045), (30, 28, 55)),
    "kidney_left": Ellipsoid((75, 55, 1055), (30, 28, 55)),
    "urinary_bladder": Ellipsoid((0, -40, 865), (40, 35, 35)),
    "heart": Ellipsoid((30, -20, 1235), (55, 50, 60)),
    "brain": Ellipsoid((0, 5, 1650), (68, 85, 62)),
    "parotid_gland_left": Ellipsoid((55, 10, 1560), (15, 20, 25)),
    "parotid_gland_right": Ellipsoid((-55, 10, 1560), (15, 20, 25)),
    "submandibular_gland_left": Ellipsoid((35, -30, 1520), (12, 12, 12)),
    "submandibular_gland_right": Ellipsoid((-35, -30, 1520), (12, 12, 12)),
}
#: Structures with uptake but no label (TotalSegmentator has no lacrimal gland class). The heart's
#: blood pool is drawn inside the (jittered) heart by :func:`sample_anatomy`.
UNLABELLED_UPTAKE: dict[str, Shape] = {
    "lacrimal_glands_left": Ellipsoid((32, -75, 1605), (7, 6, 6)),
    "lacrimal_glands_right": Ellipsoid((-32, -75, 1605), (7, 6, 6)),
    "prostate": Ellipsoid((0, -15, 825), (18, 15, 18)),
}

#: Lesion regions: name -> (centre in body mm, jitter sd in mm) or a shape to sample inside.
NODE_REGIONS: dict[str, tuple[tuple[float, float, float], float]] = {
    "cervical_nodes": ((45, 0, 1490), 12.0),
    "axillary_nodes": ((135, 0, 1340), 15.0),
    "mediastinal_nodes": ((0, -10, 1290), 15.0),
    "paraaortic_nodes": ((25, 30, 1020), 15.0),
    "pelvic_nodes": ((55, 0, 890), 12.0),
    "inguinal_nodes": ((80, -50, 820), 12.0),
    "adrenal": ((60, 40, 1095), 8.0),
    "prostate_bed": ((0, -15, 825), 8.0),
}
#: Regions sampled inside a structure; organs are taken from the patient's jittered anatomy.
INSIDE_REGIONS: dict[str, Shape] = {"bone": BONE[0], "pelvic_bone": BONE[1]}
INSIDE_ORGANS = ("liver", "spleen")

#: Disease -> lesion regions with weights; left/right regions are mirrored at random.
DISEASE_REGIONS: dict[str, dict[str, float]] = {
    "lymphoma": {
        "cervical_nodes": 3, "axillary_nodes": 3, "mediastinal_nodes": 3,
        "paraaortic_nodes": 2, "inguinal_nodes": 2, "spleen": 1,
    },
    "lung_cancer": {"lung": 4, "mediastinal_nodes": 2, "adrenal": 1, "liver": 1, "bone": 1},
    "melanoma": {"subcutaneous": 4, "liver": 1, "axillary_nodes": 1, "inguinal_nodes": 1},
    "prostate_cancer": {
        "prostate_bed": 3, "pelvic_nodes": 3, "pelvic_bone": 2, "bone": 2, "paraaortic_nodes": 1,
    },
    "negative": {},
}  # fmt: skip

#: Hot organs that lesions are placed next to, per tracer (to tempt false positives/negatives).
HOT_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "fdg": ("urinary_bladder", "kidney_left", "kidney_right", "heart", "brain"),
    "psma": ("parotid_gland_left", "submandibular_gland_right", "kidney_left", "kidney_right",
             "urinary_bladder"),
}  # fmt: skip


#: Hot organs each disease puts lesions against (a subset of its tracer's HOT_NEIGHBOURS), so
#: that diseases keep distinct lesion distributions: mediastinal/para-aortic nodes by the heart and
#: kidneys, brain metastases, pelvic disease by the bladder, cervical nodes by the glands.
NEAR_ORGANS: dict[str, tuple[str, ...]] = {
    "lymphoma": ("heart", "kidney_left", "kidney_right"),
    "lung_cancer": ("heart", "brain"),
    "melanoma": ("brain", "urinary_bladder"),
    "prostate_cancer": HOT_NEIGHBOURS["psma"],
    "negative": (),
}


@dataclass(frozen=True)
class Placement:
    """Where one patient's body sits in the physical frame, and how big it is.

    physical = (xb * scale_xy + cx, yb * scale_xy + cy, (zb - VERTEX_MM) * scale_z + z_vertex)
    """

    scale_xy: float
    scale_z: float
    cx: float
    cy: float
    z_vertex: float

    def to_physical(self, p: tuple[float, float, float]) -> np.ndarray:
        xb, yb, zb = p
        return np.array(
            [
                xb * self.scale_xy + self.cx,
                yb * self.scale_xy + self.cy,
                (zb - VERTEX_MM) * self.scale_z + self.z_vertex,
            ]
        )

    def radii(self, r: tuple[float, float, float]) -> np.ndarray:
        return np.array([r[0] * self.scale_xy, r[1] * self.scale_xy, r[2] * self.scale_z])


def render_ellipsoid(
    grid: Grid, center_mm: np.ndarray, radii_mm: np.ndarray, shell: float = 0.0
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Mask of a physical ellipsoid inside its bounding box on ``grid``.

    Returns the (z, y, x) slices of the box and the boolean mask within it, so callers touch only
    the few voxels near the shape.
    """
    sx = grid.index_range(0, center_mm[0] - radii_mm[0], center_mm[0] + radii_mm[0])
    sy = grid.index_range(1, center_mm[1] - radii_mm[1], center_mm[1] + radii_mm[1])
    sz = grid.index_range(2, center_mm[2] - radii_mm[2], center_mm[2] + radii_mm[2])
    x = (grid.axis_mm(0)[sx] - center_mm[0]) / radii_mm[0]
    y = (grid.axis_mm(1)[sy] - center_mm[1]) / radii_mm[1]
    z = (grid.axis_mm(2)[sz] - center_mm[2]) / radii_mm[2]
    d2 = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
    mask = d2 <= 1.0
    if shell > 0:
        mask &= d2 >= (1.0 - shell) ** 2
    return (sz, sy, sx), mask


def render(grid: Grid, shape: Shape, place: Placement) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding-box slices and mask of a body-model shape on ``grid`` for one patient."""
    if isinstance(shape, Ellipsoid):
        return render_ellipsoid(
            grid, place.to_physical(shape.center), place.radii(shape.radii), shape.shell
        )
    c = place.to_physical((*shape.center_xy, 0.0))
    r = place.radii((*shape.radii_xy, 1.0))
    z0 = place.to_physical((0, 0, shape.z0))[2]
    z1 = place.to_physical((0, 0, shape.z1))[2]
    sx = grid.index_range(0, c[0] - r[0], c[0] + r[0])
    sy = grid.index_range(1, c[1] - r[1], c[1] + r[1])
    sz = grid.index_range(2, z0, z1)
    x = (grid.axis_mm(0)[sx] - c[0]) / r[0]
    y = (grid.axis_mm(1)[sy] - c[1]) / r[1]
    inside = (y[:, None] ** 2 + x[None, :] ** 2) <= 1.0
    zs = grid.axis_mm(2)[sz]
    zin = (zs >= z0) & (zs <= z1)
    return (sz, sy, sx), zin[:, None, None] & inside[None, :, :]


def paint(volume: np.ndarray, grid: Grid, shape: Shape, place: Placement, value: float) -> None:
    """Set ``volume`` (z, y, x) to ``value`` inside a shape, in place."""
    box, mask = render(grid, shape, place)
    volume[box][mask] = value


def body_mask(grid: Grid, place: Placement) -> np.ndarray:
    """Boolean (z, y, x) mask of the body outline on ``grid``."""
    out = np.zeros(grid.shape_zyx, dtype=bool)
    for shape in BODY:
        box, mask = render(grid, shape, place)
        out[box] |= mask
    return out


@dataclass(frozen=True)
class Anatomy:
    """One patient: where the body sits (:class:`Placement`) and their jittered organs.

    ``organs`` maps TotalSegmentator class names to shapes in body mm (drawing order as
    :data:`ORGANS`); ``extras`` are structures with uptake but no label (lacrimal glands, prostate,
    the heart's blood pool).
    """

    place: Placement
    organs: dict[str, Ellipsoid]
    extras: dict[str, Ellipsoid]


def _jitter(
    shape: Ellipsoid, rng: np.random.Generator, shift_sd_mm: float, size_range: tuple[float, float]
) -> Ellipsoid:
    shift = rng.normal(0.0, shift_sd_mm, 3)
    scale = rng.uniform(*size_range, 3)
    return Ellipsoid(
        tuple(float(c) for c in np.array(shape.center) + shift),
        tuple(float(r) for r in np.array(shape.radii) * scale),
        shape.shell,
    )


def sample_anatomy(
    place: Placement,
    rng: np.random.Generator,
    shift_sd_mm: float = 6.0,
    size_range: tuple[float, float] = (0.85, 1.15),
) -> Anatomy:
    """Jitter every organ's position (sd ``shift_sd_mm``, body mm) and radii (factor range)."""
    organs = {name: _jitter(shape, rng, shift_sd_mm, size_range) for name, shape in ORGANS.items()}
    extras = {
        name: _jitter(shape, rng, shift_sd_mm / 2, size_range)
        for name, shape in UNLABELLED_UPTAKE.items()
    }
    heart = organs["heart"]
    extras["heart_blood_pool"] = Ellipsoid(
        (heart.center[0], heart.center[1] - 0.1 * heart.radii[1], heart.center[2]),
        tuple(0.55 * r for r in heart.radii),
    )
    return Anatomy(place, organs, extras)


def sample_region_center(
    region: str, rng: np.random.Generator, flip: bool, anatomy: Anatomy
) -> tuple[float, float, float]:
    """A lesion centre (body mm) in a named region of one patient; ``flip`` mirrors left/right."""
    sign = -1.0 if flip else 1.0
    if region in NODE_REGIONS:
        (x, y, z), sd = NODE_REGIONS[region]
        j = rng.normal(0, sd, 3)
        return (sign * x + j[0], y + j[1], z + j[2])
    if region == "subcutaneous":
        zb = rng.uniform(250, 1450)
        theta = rng.uniform(0, 2 * np.pi)
        if zb < 860:  # a leg
            cx, (rx, ry) = sign * 90.0, (75.0, 75.0)
        else:
            cx, (rx, ry) = 0.0, (170.0, 110.0)
        return (cx + 0.85 * rx * np.cos(theta), 0.85 * ry * np.sin(theta), zb)
    if region == "lung":
        shape: Shape = LUNGS[0] if flip else LUNGS[1]
    elif region in INSIDE_ORGANS:
        shape = anatomy.organs[region]
    else:
        shape = INSIDE_REGIONS[region]
    if isinstance(shape, Cylinder):
        return (shape.center_xy[0], shape.center_xy[1], rng.uniform(shape.z0 + 30, shape.z1 - 30))
    u = rng.normal(size=3)  # uniform inside 70% of the ellipsoid
    u *= 0.7 * rng.uniform() ** (1 / 3) / np.linalg.norm(u)
    p = np.array(shape.center) + u * np.array(shape.radii)
    if region == "pelvic_bone":
        p[0] *= sign
    return (float(p[0]), float(p[1]), float(p[2]))


def sample_near_organ(
    organ: str, lesion_radius_mm: float, rng: np.random.Generator, anatomy: Anatomy
) -> tuple[float, float, float]:
    """A lesion centre (body mm) straddling an organ's surface, in a random direction.

    The centre lies 0.6 lesion radii outside the surface, so once the organ's voxels are cut
    from the lesion it hugs the organ.
    """
    shape = anatomy.organs[organ]
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    r = np.array(shape.radii)
    t = 1.0 / np.sqrt(((d / r) ** 2).sum())  # distance from centre to the surface along d
    p = np.array(shape.center) + d * (t + 0.6 * lesion_radius_mm)
    return (float(p[0]), float(p[1]), float(p[2]))
