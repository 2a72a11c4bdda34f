"""Organ label sets per tracer: the single source of truth for LION label ids.

A LION label map has background 0, tumor 1, and the auxiliary organ classes 2..K in the order
declared here. Each organ class is built from one or more TotalSegmentator v2 classes (left/right
pairs merged into one class). dataset.json, the CLI's ``--tracer`` choices, colour maps,
postprocessing and the docs' label tables are all generated from these declarations.

Examples:
    >>> from lion_nnunet.labels import get_label_set, TUMOR_LABEL
    >>> fdg = get_label_set("fdg")
    >>> fdg.labels()["tumor"] == TUMOR_LABEL
    True
    >>> fdg.organ_names[:3]
    ('brain', 'heart', 'kidneys')
    >>> fdg.label_of("kidneys")
    4
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lion_nnunet.errors import LionError

BACKGROUND_LABEL = 0
TUMOR_LABEL = 1
FIRST_ORGAN_LABEL = 2

#: TotalSegmentator tasks whose outputs we read, with the file stem TotalSegmentator writes for
#: the multi-label output (``--ml``) of each.
TOTALSEG_TASKS = ("total", "head_glands_cavities")


@dataclass(frozen=True)
class TotalSegClass:
    """One TotalSegmentator v2 class.

    Args:
        task: TotalSegmentator task, e.g. ``"total"`` or ``"head_glands_cavities"``.
        name: class name, also the file stem of its binary mask (``<name>.nii.gz``).
        id: value of the class in that task's multi-label output.
    """

    task: str
    name: str
    id: int


@dataclass(frozen=True)
class OrganClass:
    """One auxiliary LION organ class, merged from one or more TotalSegmentator classes."""

    name: str
    sources: tuple[TotalSegClass, ...]
    description: str = ""


@dataclass(frozen=True)
class LabelSet:
    """The label set of one tracer: tumor plus ordered auxiliary organ classes.

    Label ids of LION's own sets: background 0, tumor 1, ``organs[i]`` -> ``i + 2``. A set read
    from another model's dataset.json (:func:`label_set_from_dataset_labels`) carries its own ids
    in ``tumor_label`` and ``organ_ids`` (e.g. lionz's FDG model: organs 1..10, tumor 11).
    """

    tracer: str
    organs: tuple[OrganClass, ...]
    notes: str = ""
    tumor_label: int = TUMOR_LABEL
    organ_ids: tuple[int, ...] = ()
    tumor_name: str = "tumor"

    def __post_init__(self) -> None:
        names = [o.name for o in self.organs]
        if len(set(names)) != len(names):
            raise LionError(f"label set {self.tracer!r}: organ names repeat: {', '.join(names)}")
        if {"background", "tumor"} & set(names):
            raise LionError(
                f"label set {self.tracer!r}: 'background' and 'tumor' are reserved names"
            )
        seen: dict[tuple[str, str], str] = {}
        for organ in self.organs:
            if not organ.sources:
                raise LionError(
                    f"label set {self.tracer!r}: organ {organ.name!r} has no "
                    "TotalSegmentator source class"
                )
            for src in organ.sources:
                if src.task not in TOTALSEG_TASKS:
                    raise LionError(
                        f"label set {self.tracer!r}: organ {organ.name!r} uses task "
                        f"{src.task!r}; expected one of {TOTALSEG_TASKS}"
                    )
                key = (src.task, src.name)
                if key in seen:
                    raise LionError(
                        f"label set {self.tracer!r}: TotalSegmentator class {src.task}/{src.name} "
                        f"is mapped to both {seen[key]!r} and {organ.name!r}"
                    )
                seen[key] = organ.name
        if self.organ_ids and len(self.organ_ids) != len(self.organs):
            raise LionError(
                f"label set {self.tracer!r}: {len(self.organ_ids)} organ ids for "
                f"{len(self.organs)} organs"
            )

    @property
    def organ_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.organs)

    @property
    def organ_labels(self) -> tuple[int, ...]:
        """Label ids of the organ classes (2..K for LION's own sets)."""
        if self.organ_ids:
            return self.organ_ids
        return tuple(range(FIRST_ORGAN_LABEL, FIRST_ORGAN_LABEL + len(self.organs)))

    @property
    def num_classes(self) -> int:
        """Number of classes including background (labels are consecutive from 0)."""
        return 2 + len(self.organs)

    def labels(self, with_organs: bool = True) -> dict[str, int]:
        """The nnU-Net dataset.json ``labels`` mapping (name -> id, in id order)."""
        out = {"background": BACKGROUND_LABEL, self.tumor_name: self.tumor_label}
        if with_organs:
            out.update(zip(self.organ_names, self.organ_labels, strict=True))
        return dict(sorted(out.items(), key=lambda kv: kv[1]))

    def label_of(self, organ: str) -> int:
        """Label id of an organ class by name."""
        if not self.organs:
            raise LionError(
                f"organ {organ!r}: the {self.tracer} label set has no organ classes (tumor only)"
            )
        try:
            return self.organ_labels[self.organ_names.index(organ)]
        except ValueError:
            raise LionError(
                f"organ {organ!r} is not in the {self.tracer} label set; "
                f"choose from {', '.join(self.organ_names)}"
            ) from None

    def name_of(self, label: int) -> str:
        """Class name of a label id."""
        for name, value in self.labels().items():
            if value == label:
                return name
        raise LionError(
            f"label {label} is not in the {self.tracer} label set (0..{self.num_classes - 1})"
        )

    def tasks(self) -> tuple[str, ...]:
        """TotalSegmentator tasks this label set needs, in TOTALSEG_TASKS order."""
        used = {s.task for o in self.organs for s in o.sources}
        return tuple(t for t in TOTALSEG_TASKS if t in used)

    def totalseg_lookup(self) -> dict[tuple[str, str], int]:
        """Map ``(task, TotalSegmentator class name)`` -> LION label id."""
        return {
            (s.task, s.name): label
            for organ, label in zip(self.organs, self.organ_labels, strict=True)
            for s in organ.sources
        }

    def totalseg_id_lookup(self, task: str) -> dict[int, int]:
        """Map TotalSegmentator multi-label id of ``task`` -> LION label id."""
        return {
            s.id: label
            for organ, label in zip(self.organs, self.organ_labels, strict=True)
            for s in organ.sources
            if s.task == task
        }

    def to_dict(self) -> dict:
        """JSON-serialisable form (the schema of ``--label-set`` files)."""
        return {
            "tracer": self.tracer,
            "notes": self.notes,
            "organs": [
                {
                    "name": o.name,
                    "description": o.description,
                    "totalsegmentator": [
                        {"task": s.task, "name": s.name, "id": s.id} for s in o.sources
                    ],
                }
                for o in self.organs
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "label set") -> LabelSet:
        """Build a label set from its JSON form, naming ``where`` in every error."""
        try:
            organs = tuple(
                OrganClass(
                    name=str(o["name"]),
                    description=str(o.get("description", "")),
                    sources=tuple(
                        TotalSegClass(task=str(s["task"]), name=str(s["name"]), id=int(s["id"]))
                        for s in o["totalsegmentator"]
                    ),
                )
                for o in data["organs"]
            )
            return cls(tracer=str(data["tracer"]), organs=organs, notes=str(data.get("notes", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise LionError(
                f"{where}: not a valid label set ({type(e).__name__}: {e}); expected "
                '{"tracer": ..., "organs": [{"name": ..., "totalsegmentator": '
                '[{"task": ..., "name": ..., "id": ...}]}]}'
            ) from None


def _ts(task: str, *pairs: tuple[str, int]) -> tuple[TotalSegClass, ...]:
    return tuple(TotalSegClass(task, name, id_) for name, id_ in pairs)


# TotalSegmentator v2 ids, from totalsegmentator/map_to_binary.py (class_map["total"] and
# class_map["head_glands_cavities"]); tests/test_labels.py checks them against the package.
FDG = LabelSet(
    tracer="fdg",
    organs=(
        OrganClass("brain", _ts("total", ("brain", 90)), "high glucose metabolism"),
        OrganClass("heart", _ts("total", ("heart", 51)), "variable myocardial uptake"),
        OrganClass(
            "kidneys", _ts("total", ("kidney_right", 2), ("kidney_left", 3)), "renal excretion"
        ),
        OrganClass("urinary_bladder", _ts("total", ("urinary_bladder", 21)), "excreted tracer"),
        OrganClass("liver", _ts("total", ("liver", 5)), "moderate background uptake"),
        OrganClass("spleen", _ts("total", ("spleen", 1)), "moderate uptake"),
        OrganClass("stomach", _ts("total", ("stomach", 6)), "variable physiological uptake"),
        OrganClass(
            "small_bowel",
            _ts("total", ("small_bowel", 18), ("duodenum", 19)),
            "bowel uptake (small bowel + duodenum)",
        ),
        OrganClass("colon", _ts("total", ("colon", 20)), "bowel uptake"),
    ),
)

PSMA = LabelSet(
    tracer="psma",
    organs=(
        OrganClass(
            "salivary_glands",
            _ts(
                "head_glands_cavities",
                ("parotid_gland_left", 7),
                ("parotid_gland_right", 8),
                ("submandibular_gland_right", 9),
                ("submandibular_gland_left", 10),
            ),
            "parotid + submandibular glands, intense PSMA uptake",
        ),
        OrganClass(
            "kidneys", _ts("total", ("kidney_right", 2), ("kidney_left", 3)), "renal uptake"
        ),
        OrganClass("liver", _ts("total", ("liver", 5)), "hepatobiliary uptake"),
        OrganClass("spleen", _ts("total", ("spleen", 1)), "moderate uptake"),
        OrganClass(
            "small_bowel",
            _ts("total", ("small_bowel", 18), ("duodenum", 19)),
            "bowel uptake (small bowel + duodenum)",
        ),
        OrganClass("urinary_bladder", _ts("total", ("urinary_bladder", 21)), "excreted tracer"),
    ),
    notes=(
        "Lacrimal glands also take up PSMA ligands, but TotalSegmentator v2 has no lacrimal gland "
        "class, so they are not an auxiliary class here."
    ),
)

#: Organs whose physiological uptake is intense enough to be mistaken for tumor, per tracer: a
#: predicted lesion inside or touching one is flagged for review (``inference.flags``).
#: Names of organ classes in the label sets above; a label set without one of them skips it.
HOT_ORGANS: dict[str, tuple[str, ...]] = {
    "fdg": ("brain", "heart", "kidneys", "urinary_bladder"),
    "psma": ("salivary_glands", "kidneys", "urinary_bladder"),
}
#: The organ whose mean SUV is the reference for unsegmented hot spots (PERCIST's).
REFERENCE_ORGAN = "liver"
#: Where each organ's bulk lies along the body axis, head (0) to pelvis (5): brain; salivary
#: glands (neck); heart (chest); liver, spleen, stomach (upper abdomen); kidneys, bowel
#: (abdomen); bladder (pelvis). Two organs two or more levels apart are never the other way
#: round in a patient (``inference.anatomy`` flags an organ map where they are).
BODY_LEVELS: dict[str, int] = {
    "brain": 0, "salivary_glands": 1, "heart": 2, "liver": 3, "spleen": 3, "stomach": 3,
    "kidneys": 4, "small_bowel": 4, "colon": 4, "urinary_bladder": 5,
}  # fmt: skip

#: The registry: tracer name -> label set. Feeds ``--tracer`` choices, docs and tests.
LABEL_SETS: dict[str, LabelSet] = {ls.tracer: ls for ls in (FDG, PSMA)}
TRACERS: tuple[str, ...] = tuple(LABEL_SETS)


def get_label_set(tracer: str) -> LabelSet:
    """The built-in label set of a tracer (``"fdg"`` or ``"psma"``)."""
    try:
        return LABEL_SETS[tracer.lower()]
    except KeyError:
        raise LionError(f"unknown tracer {tracer!r}; choose from {', '.join(TRACERS)}") from None


def load_label_set(path: str | Path) -> LabelSet:
    """Read a user label set from a JSON file with the schema of :meth:`LabelSet.to_dict`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LionError(f"{path}: label-set file not found") from None
    except json.JSONDecodeError as e:
        raise LionError(f"{path}: label-set file is not valid JSON ({e})") from None
    return LabelSet.from_dict(data, where=str(path))


def resolve_label_set(
    tracer: str | None = None, label_set_file: str | Path | None = None
) -> LabelSet:
    """The label set from ``--label-set FILE`` when given, else from ``--tracer``."""
    if label_set_file is not None:
        return load_label_set(label_set_file)
    if tracer is None:
        raise LionError("give a tracer (--tracer fdg|psma) or a label-set file (--label-set)")
    return get_label_set(tracer)


#: Words that name the tumor class in a model's dataset.json (see :func:`find_tumor_label`).
TUMOR_WORDS = ("tumor", "tumour", "tumors", "tumours", "lesion", "lesions", "metastasis",
               "metastases", "malignancy")  # fmt: skip


def _is_tumor_name(name: str) -> bool:
    return any(w in TUMOR_WORDS for w in re.split(r"[^a-z0-9]+", name.lower()) if w)


def find_tumor_label(
    labels: Mapping[str, object], where: str = "dataset.json", override: int | None = None
) -> int:
    """The tumor label id of a dataset.json ``labels`` mapping (name -> id).

    The rule: a class is the tumor when its name, lower-cased and split at every character that
    is not a letter or digit, contains one of :data:`TUMOR_WORDS` (``tumor``, ``Tumor``,
    ``lesion``, ``tumour_lesions``, ``FDG-avid lesion`` all match; ``liver`` does not). Exactly
    one class must match (or, when none does, the dataset must have exactly one foreground
    class); otherwise the caller must say which id is the tumor (``override``, the CLI's
    ``--tumor-label N``), which must be a foreground id of ``labels`` and, when exactly one class
    is named like a tumor, that class (an override naming an organ is refused with both named).

    Examples:
        >>> find_tumor_label({"background": 0, "tumor": 1, "liver": 2})
        1
        >>> find_tumor_label({"background": 0, "liver": 1, "spleen": 2, "Lesion": 3})
        3
        >>> find_tumor_label({"background": 0, "a": 1, "b": 2}, override=2)
        2

    Raises:
        LionError: no or several tumor-named classes and no override, an override that is not
            a foreground id or names another class than the one tumor-named class, or
            region-based (non-integer) labels.
    """
    ids: dict[str, int] = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise LionError(
                f"{where}: label {name!r} = {value!r} is not one integer id (region-based "
                "labels are not supported); LION needs one id per class"
            )
        ids[str(name)] = value
    listing = ", ".join(f"{n}={v}" for n, v in sorted(ids.items(), key=lambda kv: kv[1]))
    found = [(n, v) for n, v in ids.items() if _is_tumor_name(n)]
    if override is not None:
        if override == BACKGROUND_LABEL or override not in ids.values():
            raise LionError(
                f"--tumor-label {override}: not a foreground class of {where} ({listing})"
            )
        if len(found) == 1 and found[0][1] != override:  # the names say which class is tumor
            named = next(n for n, v in ids.items() if v == override)
            raise LionError(
                f"--tumor-label {override}: {where} names class {override} {named!r} and its "
                f"tumor {found[0][0]!r} = {found[0][1]} ({listing}); leave out --tumor-label "
                f"(the tumor is found by name) or pass --tumor-label {found[0][1]}"
            )
        return override
    if len(found) == 1:
        return found[0][1]
    foreground = [v for v in ids.values() if v != BACKGROUND_LABEL]
    if not found and len(foreground) == 1:  # a binary dataset: its one class is the tumor
        return foreground[0]
    what = "no class" if not found else f"{len(found)} classes"
    raise LionError(
        f"{where}: {what} named like a tumor ({'/'.join(TUMOR_WORDS[:2])}/lesion/...) among "
        f"{listing}; pass --tumor-label N with the tumor's id"
    )


def label_set_from_dataset_labels(
    labels: Mapping[str, int],
    tracer: str = "custom",
    tumor_label: int | None = None,
    where: str = "dataset.json",
) -> LabelSet:
    """The tumor and organ classes of a model from its dataset.json ``labels`` (name -> id).

    The one place that interprets a model's labels: predict, postprocess, evaluate, compare and
    the model registry call it. The tumor is found by :func:`find_tumor_label` (or given as
    ``tumor_label``); every other foreground class is an organ, whatever its id. When ``tracer``
    is a built-in tracer whose layout (tumor 1, organs in LION's order) matches, LION's own label
    set is returned.

    Examples:
        >>> ls = label_set_from_dataset_labels({"background": 0, "liver": 1, "tumor": 2})
        >>> ls.tumor_label, ls.organ_names, ls.organ_labels
        (2, ('liver',), (1,))
    """
    tumor = find_tumor_label(labels, where, tumor_label)
    if labels.get("background", BACKGROUND_LABEL) != BACKGROUND_LABEL:
        raise LionError(f"{where}: background is {labels['background']}, expected 0")
    values = sorted(labels.values())
    if values != list(range(len(values))):
        raise LionError(
            f"{where}: label ids {', '.join(map(str, values))} are not consecutive from 0 "
            "(nnU-Net's rule)"
        )
    tumor_name = next(k for k, v in labels.items() if v == tumor)
    organs = sorted((v, k) for k, v in labels.items() if v not in (BACKGROUND_LABEL, tumor))
    for value, name in organs:
        if name in ("background", "tumor"):  # two tumor-named classes, the other one chosen
            raise LionError(
                f"{where}: with tumor {tumor_name!r} = {tumor}, class {name!r} = {value} would "
                "be an organ; pass --tumor-label with the id of the class that is the tumor"
            )
    builtin = LABEL_SETS.get(tracer)
    if (
        builtin is not None
        and tumor == TUMOR_LABEL
        and [k for _, k in organs] == list(builtin.organ_names)
        and [v for v, _ in organs] == list(builtin.organ_labels)
    ):
        return builtin
    return LabelSet(
        tracer=tracer,
        organs=tuple(
            OrganClass(name, (TotalSegClass("total", name, -1 - i),))
            for i, (_, name) in enumerate(organs)
        ),
        tumor_label=tumor,
        organ_ids=tuple(v for v, _ in organs),
        tumor_name=tumor_name,
    )


def check_tracer_matches(label_set: LabelSet, tracer: str, where: str) -> None:
    """Refuse ``--tracer`` when the labels on disk are not that tracer's LION layout.

    A lionz PSMA prediction (organs 1..5, tumor 6) read as LION PSMA (tumor 1) would report an
    organ as tumor; this is an error, never a guess.
    """
    expected = get_label_set(tracer)
    if label_set.labels() != expected.labels():
        raise LionError(
            f"{where}: labels {label_set.labels()} are not the LION {tracer} layout "
            f"{expected.labels()}; leave out --tracer (the labels on disk are used) or pass "
            "--tumor-label N"
        )


def markdown_table(label_set: LabelSet) -> str:
    """The docs' label table for one tracer (docs/labels.md is generated from this)."""
    rows = [
        "| id | class | TotalSegmentator v2 source (task/name = id) | why |",
        "| --- | --- | --- | --- |",
        f"| {BACKGROUND_LABEL} | background | - | - |",
        f"| {TUMOR_LABEL} | tumor | - (from the tumor mask; wins over organs) | target |",
    ]
    for organ, label in zip(label_set.organs, label_set.organ_labels, strict=True):
        src = ", ".join(f"{s.task}/{s.name} = {s.id}" for s in organ.sources)
        rows.append(f"| {label} | {organ.name} | {src} | {organ.description} |")
    return "\n".join(rows)


def all_totalseg_classes(
    label_sets: Iterable[LabelSet] = LABEL_SETS.values(),
) -> set[TotalSegClass]:
    """Every TotalSegmentator class used by the given label sets."""
    return {s for ls in label_sets for o in ls.organs for s in o.sources}


LABELS_DOC_INTRO = """\
# LION label sets

Generated from `lion_nnunet/labels.py` by `python -m lion_nnunet.labels > docs/labels.md`;
`tests/test_labels.py` fails when this page and the code drift apart.

Every LION label map has background 0 and tumor 1; the auxiliary organ classes follow in a fixed
order from 2. Organs are taken from TotalSegmentator v2 (`totalsegmentator.map_to_binary.class_map`,
checked against the installed package by the tests); left/right pairs and the parts of the small
bowel are merged into one class. Where an organ and the tumor mask overlap, **tumor wins**. At
inference the organ classes are dropped and only the tumor is reported.

Why these organs: they are the structures with physiological uptake of each tracer that a
PET-only network would otherwise mistake for tumor (the preprint's list: brain, heart, kidneys,
urinary bladder and liver for FDG; salivary and lacrimal glands, kidneys, liver, spleen, bowel and
bladder for PSMA). We add spleen, stomach, small bowel and colon for FDG because physiological
gastrointestinal and splenic uptake is a common false-positive source in FDG PET; they cost nothing
at inference. Your own set: write the JSON below for your organs and pass `--label-set FILE`
to `lion convert`.
"""


def labels_document() -> str:
    """The whole of docs/labels.md."""
    parts = [LABELS_DOC_INTRO]
    for ls in LABEL_SETS.values():
        parts.append(f"## {ls.tracer.upper()}\n\n{markdown_table(ls)}\n")
        if ls.notes:
            parts.append(f"{ls.notes}\n")
    example = json.dumps(LABEL_SETS["psma"].to_dict()["organs"][:1], indent=2)
    parts.append(
        "## Label-set JSON schema\n\n"
        '`{"tracer": NAME, "notes": TEXT, "organs": [ORGAN, ...]}`, each organ like:\n\n'
        f"```json\n{example}\n```\n"
    )
    return "\n".join(parts)


if __name__ == "__main__":
    print(labels_document(), end="")
