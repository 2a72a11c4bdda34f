"""The record of a checked model folder (:class:`ModelInfo`) and the default checkpoint name.

A low module with no imports from the rest of :mod:`lion_nnunet.inference`: ``model.py`` builds
the record, ``installed.py`` (checksums of an installed model's checkpoints) and the predictor
read it, so neither needs the other for a type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lion_nnunet.labels import LabelSet

CHECKPOINT = "checkpoint_final.pth"


@dataclass(frozen=True)
class ModelInfo:
    """What the predictor and the report need to know about a model folder."""

    folder: Path
    folds: tuple[str, ...]
    dataset_json: dict
    plans: dict
    configuration: str
    label_set: LabelSet
    num_channels: int
    file_ending: str
    checkpoint: str = CHECKPOINT

    @property
    def name(self) -> str:
        """``DatasetXXX_NAME/<Trainer>__<Plans>__<configuration>``."""
        return f"{self.folder.parent.name}/{self.folder.name}"
