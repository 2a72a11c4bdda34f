"""LION: PET-only tumor segmentation as an nnU-Net v2 extension.

Python API (imported lazily: ``import lion_nnunet`` does not import torch)::

    model = lion_nnunet.load_model("fdg", device="cpu")   # installed name or model folder
    result = model.segment(pet_suv_image)                 # SimpleITK image or numpy + spacing
    result.tumor, result.organs, result.report

See :mod:`lion_nnunet.api`.
"""

__version__ = "0.1.0"


def load_model(*args, **kwargs):
    """Load a LION model once for many images; see :func:`lion_nnunet.api.load_model`."""
    from lion_nnunet.api import load_model as _load_model

    return _load_model(*args, **kwargs)
