"""Cohort execution on Dask: one task per case over local cores, GPUs, a scheduler or SLURM.

:mod:`.cluster` turns the ``--cluster`` spec into a Dask client (or None: today's single-process
path), :mod:`.run` runs one task per case with failure isolation and writes ``cohort.csv``, and
:mod:`.predict` is ``lion predict``'s task (the predictor loaded once per worker). The per-case
functions of the commands know nothing about Dask.
"""
