"""Which refinement a served case's clicks get, and the click models' predictors, one per server.

A case's clicks (``POST /api/cases/<case>/clicks``, :mod:`.corrections`) are refined as
``lion predict --clicks`` would: by the click model that predicted the case when it is one
(``nnUNetTrainer_LION_Clicks*``), with
:class:`~lion_nnunet.interactive.model_session.ClickModelSession`, otherwise by the rule-based
edit (:class:`~lion_nnunet.interactive.session.RefinementSession`). The model is the one the
case's report.json names: ``model_path``, ``folds``, ``checkpoint`` and ``checkpoint_sha256``,
as ``lion predict`` records them. A click model is used only when its folder is still there and
its checkpoints' SHA-256 are the recorded ones; otherwise the clicks get the rule-based edit and
the reason is given (:attr:`ClickMethod.fallback`: the API's answer, corrections.json, the log),
never silently. A plain model's case, or a mask that no model folder is recorded for, gets the
rule-based edit: that is its method, not a fallback.

A click model's predictor is built once per server (:class:`ClickModels`; key: folder, fold,
checkpoint and the prediction's test-time mirroring and tile step, which the session uses as
``lion predict`` did), on CUDA when torch sees it, else on the CPU, with the first of the
report's folds (the session runs one fold).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.inference.model_info import CHECKPOINT, ModelInfo
from lion_nnunet.interactive.model_input import CLICK_MODEL
from lion_nnunet.interactive.session import RULE_BASED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClickMethod:
    """How one case's clicks are refined.

    Attributes:
        name: :data:`CLICK_MODEL` or :data:`RULE_BASED` (corrections.json's ``method``).
        model: the checked click model (its first fold only), None for the rule-based edit.
        use_mirroring, tile_step_size: the prediction's settings, which the click model reuses.
        fallback: why the click model the case was predicted with is not used (one sentence),
            None when nothing fell back.
    """

    name: str
    model: ModelInfo | None = None
    use_mirroring: bool = False
    tile_step_size: float = 0.5
    fallback: str | None = None

    def describe(self) -> str:
        """``click model (Dataset.../Trainer__Plans__config, fold 0)`` or ``rule-based edit``."""
        if self.model is None:
            return self.name
        return f"{self.name} ({self.model.name}, fold {self.model.folds[0]})"


@functools.lru_cache(maxsize=64)
def _is_click_trainer(folder_name: str) -> bool:
    """Whether the trainer that names a ``<Trainer>__<Plans>__<configuration>`` folder is a
    LION click trainer (looked up as ``nnUNetv2_train -tr`` does; once per name)."""
    from lion_nnunet.trainers.clicks import nnUNetTrainer_LION_Clicks
    from lion_nnunet.trainers.discovery import find_trainer, register_ext_trainer_folder

    name = folder_name.split("__")[0]
    register_ext_trainer_folder()
    trainer = find_trainer(name)
    return trainer is not None and issubclass(trainer, nnUNetTrainer_LION_Clicks)


def case_method(report: dict) -> ClickMethod:
    """The method for the clicks of the case whose report.json is ``report`` (module doc)."""
    from lion_nnunet.inference.installed import checkpoint_sha256
    from lion_nnunet.inference.model import check_model_folder

    path = report.get("model_path")
    if not path or not _is_click_trainer(Path(path).name):
        return ClickMethod(RULE_BASED)
    why = "; clicks get the rule-based edit"
    if not Path(path).is_dir():
        return ClickMethod(RULE_BASED, fallback=f"click model folder {path} (report.json's "
                           f"model_path) is gone{why}")  # fmt: skip
    folds = [str(f) for f in report.get("folds") or []] or None
    try:
        model = check_model_folder(path, folds, report.get("checkpoint") or CHECKPOINT)
    except LionError as e:
        return ClickMethod(RULE_BASED, fallback=f"click model not usable: {e}{why}")
    recorded = report.get("checkpoint_sha256") or {}
    actual = checkpoint_sha256(model)
    changed = [f"fold {f}: {(recorded.get(f) or 'none')[:12]}... recorded, {h[:12]}... now"
               for f, h in actual.items() if recorded.get(f) != h]  # fmt: skip
    if changed:
        return ClickMethod(RULE_BASED, fallback=(
            f"click model {model.folder}: checkpoint SHA-256 differs from the one this case was "
            f"predicted with ({', '.join(changed)}){why}"))  # fmt: skip
    settings = report.get("settings") or {}
    first = dataclasses.replace(model, folds=model.folds[:1])
    return ClickMethod(CLICK_MODEL, first, bool(settings.get("use_mirroring", True)),
                       float(settings.get("tile_step_size", 0.5)))  # fmt: skip


class ClickModels:
    """The click models' predictors of one server, each built at its first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._predictors: dict[tuple, tuple[object, threading.Lock]] = {}

    @contextlib.contextmanager
    def session(self, method: ClickMethod) -> Iterator:
        """A fresh :class:`ClickModelSession` of ``method``'s model, its predictor held by this
        thread alone until the block ends (two cases' clicks take turns on one model)."""
        import torch

        from lion_nnunet.inference.predict import LionPredictor
        from lion_nnunet.interactive.model_session import ClickModelSession

        model = method.model
        if model is None:
            raise LionError(f"{method.name}: no click model to run")
        key = (str(model.folder.resolve()), model.folds, model.checkpoint, method.use_mirroring,
               method.tile_step_size)  # fmt: skip
        with self._lock:  # a model loads once, even when two cases ask for it at once
            if key not in self._predictors:
                device = "cuda" if torch.cuda.is_available() else "cpu"
                log.info("loading click model %s (fold %s) on %s", model.name, model.folds[0],
                         device)  # fmt: skip
                predictor = LionPredictor(model, device, method.use_mirroring,
                                          method.tile_step_size, model.checkpoint)  # fmt: skip
                self._predictors[key] = (predictor, threading.Lock())
            predictor, busy = self._predictors[key]
        with busy:
            yield ClickModelSession(predictor)


def methods_line(reports: dict[str, dict]) -> str:
    """One line saying which method the clicks of each case get, e.g. ``clicks: click model
    (Dataset993_X/..., fold 0) for 2 case(s), rule-based edit for 1 case(s)``; a fallback's
    reason follows (module doc). ``reports``: case id -> its report.json."""
    found: dict[str, ClickMethod] = {}
    counts: dict[str, int] = {}
    fallbacks: list[str] = []
    for report in reports.values():
        settings = report.get("settings") or {}
        key = repr([report.get(k) for k in ("model_path", "folds", "checkpoint",
                                            "checkpoint_sha256")]
                   + [settings.get("use_mirroring"), settings.get("tile_step_size")])  # fmt: skip
        if key not in found:
            found[key] = case_method(report)
            if found[key].fallback:
                fallbacks.append(found[key].fallback)
        name = found[key].describe()
        counts[name] = counts.get(name, 0) + 1
    parts = ", ".join(f"{name} for {n} case(s)" for name, n in counts.items()) or "no cases"
    return f"clicks: {parts}" + "".join(f"; {why}" for why in fallbacks)
