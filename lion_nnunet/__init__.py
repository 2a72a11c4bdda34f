"""LION: PET-only tumor segmentation as an nnU-Net v2 extension."""

__version__ = "0.1.0"
