"""Synthetic data for demos, tests and benchmarks: whole-body PET phantoms and a DICOM PET writer.

Real-data code (``dataset_conversion``, ``inference``, ``analysis``) never imports this package;
only ``lion phantoms``, ``lion demo``, the experiments on phantoms, tests and benchmarks do.
"""
