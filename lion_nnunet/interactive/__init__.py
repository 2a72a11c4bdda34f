"""Interactive LION: tumor and background clicks as data, the autoPET IV robot user, the
interactive evaluation protocol (docs/interactive.md).

Modules: :mod:`.clickfile` (the autoPET IV click files), :mod:`.simulate` (clicks from a ground
truth, on arrays), :mod:`.cases` (``lion clicks simulate`` over a folder), :mod:`.steps` (``lion
evaluate --interactive``), :mod:`.cli_clicks` (the ``lion clicks`` command).

Points are voxel indices (i, j, k) of the PET NIfTI in nibabel's axis order, i.e. the file's own
(x, y, z) order; numpy arrays read with SimpleITK are (z, y, x) and are transposed first.
"""
