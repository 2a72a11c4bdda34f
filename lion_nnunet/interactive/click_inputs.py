"""``lion predict --clicks FILE|DIR``: which click file belongs to which case, checked first.

``--clicks DIR``: ``DIR/<case_id>_clicks.json`` for every case of ``-i`` (the name ``lion clicks
simulate`` writes); ``--clicks FILE``: the click file of ``-i``'s one case. Every file is read
and checked against its PET's header (size, and the geometry for points in mm) before anything is
predicted, so a bad click file stops the run with one sentence and nothing written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.inference.cases import Case

from .cases import clicks_name
from .clickfile import read_clicks
from .prompt import Prompt

log = logging.getLogger(__name__)


def _header_image(path: Path) -> tuple[sitk.Image, tuple[int, ...]] | None:
    """A one-voxel image with the file's geometry (origin, spacing, direction), and its size.

    Click points in mm map to voxels through the geometry alone; the file is not read whole.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:  # unreadable: the prediction refuses the file itself, naming it
        return None
    if reader.GetDimension() != 3:  # refused by the prediction's reader, naming the file
        return None
    stand_in = sitk.Image([1] * reader.GetDimension(), sitk.sitkUInt8)
    stand_in.SetOrigin(reader.GetOrigin())
    stand_in.SetSpacing(reader.GetSpacing())
    stand_in.SetDirection(reader.GetDirection())
    return stand_in, reader.GetSize()


def attach_click_files(cases: Sequence[Case], clicks: str | Path) -> list[Case]:
    """The cases with their click files as ``prompt``; every file checked before any prediction.

    Args:
        cases: from :func:`lion_nnunet.inference.predict.discover_cases`.
        clicks: a folder of ``<case_id>_clicks.json`` (one per case), or one click file when
            ``-i`` is one image.

    Raises:
        LionError: one sentence: the path missing, a case without its click file, a file for
            several cases, or the first bad click file (naming the file and the point). A case
            read from DICOM has its clicks checked when its PET is loaded.
    """
    path = Path(clicks)
    if path.is_dir():
        files = {c.case_id: path / clicks_name(c.case_id) for c in cases}
        missing = [f"{i} ({f.name})" for i, f in files.items() if not f.is_file()]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            shown = ", ".join(missing[:3]) + more
            raise LionError(
                f"--clicks {path}: no click file for {len(missing)} case(s): {shown}; give "
                "each case its <case_id>_clicks.json (an empty {} for no clicks)"
            )
        wanted = {f.name for f in files.values()}
        unused = sorted(p.name for p in path.glob("*_clicks.json") if p.name not in wanted)
        if unused:
            log.warning("--clicks %s: %d click file(s) match no case of -i (%s)", path,
                        len(unused), ", ".join(unused[:3]))  # fmt: skip
    elif path.is_file():
        if len(cases) != 1:
            raise LionError(
                f"--clicks {path}: one click file, but -i holds {len(cases)} cases; give a "
                "folder of <case_id>_clicks.json files"
            )
        files = {cases[0].case_id: path}
    else:
        raise LionError(f"--clicks {path}: no such click file or folder")
    attached = []
    for case in cases:
        prompt = Prompt(files[case.case_id])
        header = _header_image(case.files[0]) if case.files else None
        if header is not None:
            image, size = header
            read_clicks(prompt.click_file, shape_ijk=size, image=image)
        attached.append(replace(case, prompt=prompt))
    return attached
