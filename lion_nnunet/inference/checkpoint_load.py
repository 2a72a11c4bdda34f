"""Reading an nnU-Net checkpoint without running code from it.

A PyTorch checkpoint is a pickle, and loading it with ``weights_only=False`` (what nnU-Net's own
predictor and trainer do) calls any function the file names: an untrusted model zip could run
code on the first load. ``lion models install`` therefore reads each checkpoint with
``weights_only=True``: torch's restricted unpickler builds only tensors, containers, numbers,
strings, ``torch.device`` and the globals listed in :data:`NNUNET_GLOBALS`, the ones an nnU-Net v2
checkpoint holds besides those (``logging`` and ``_best_ema`` keep numpy scalars: a scalar is
rebuilt from ``numpy.dtype`` and the dtype's class, float32 in nnU-Net 2.8.1's
``save_checkpoint``, float64 in earlier versions; numpy 1 names the module ``numpy.core``,
numpy 2 ``numpy._core``). Anything else is refused with one sentence, unless the user says the
source is trusted (``--trust-checkpoint``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lion_nnunet.errors import LionError

try:
    from numpy._core.multiarray import scalar as _scalar  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.26
    from numpy.core.multiarray import scalar as _scalar

#: Globals an nnU-Net v2 checkpoint holds beyond torch's own ``weights_only`` allow-list, with
#: the name a pickle written under numpy 1 or 2 gives each.
NNUNET_GLOBALS = (
    (_scalar, "numpy._core.multiarray.scalar"),
    (_scalar, "numpy.core.multiarray.scalar"),
    np.dtype,
    np.dtypes.Float32DType,
    np.dtypes.Float64DType,
)


def load_checkpoint(path: str | Path, trust: bool = False) -> dict:
    """The checkpoint at ``path`` (on the CPU), read without running code from it.

    Args:
        path: an nnU-Net ``checkpoint_*.pth``.
        trust: read it with ``weights_only=False`` (any pickle, runs what it names): only for a
            file from a source the user trusts (``--trust-checkpoint``).

    Raises:
        LionError: the file is damaged or not a checkpoint, or (without ``trust``) it holds an
            object that is not weights, naming it.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(NNUNET_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = None if trust else _refused_name(str(e))
        if refused:
            raise LionError(
                f"{path}: the checkpoint refers to {refused}, which is not part of an nnU-Net "
                "checkpoint's weights or training record; loading it could run code from the "
                "file, so it is refused; if you trust its source, install it with "
                "--trust-checkpoint"
            ) from None
        raise _damaged(path, e) from None
    except Exception as e:  # torch raises many types for a broken file
        raise _damaged(path, e) from None


def _damaged(path: Path, e: Exception) -> LionError:
    text = str(e).strip()
    unpickler = re.search(r"WeightsUnpickler error: \s*(.+)", text)
    first = unpickler.group(1).strip() if unpickler else (text.splitlines() or [""])[0]
    return LionError(
        f"{path}: cannot read the checkpoint ({type(e).__name__}: {first}); the file is damaged "
        "or not a PyTorch checkpoint; get the model again"
    )


def _refused_name(message: str) -> str | None:
    """The global torch's weights-only loader refused (``exec``, ``os.system``), from its
    message; None when it refused something else (a file that is no pickle at all).

    torch words it three ways: a global outside its allow-list ("Unsupported global: GLOBAL
    builtins.exec"), one from a module it blocks outright ("Trying to load unsupported GLOBAL
    posix.system whose module posix is blocked"), and a class it will not build.
    """
    match = (
        re.search(r"Unsupported global: GLOBAL (\S+)", message)
        or re.search(r"unsupported GLOBAL (\S+) whose module", message)
        or re.search(r"Can only build .* but got <class '([^']+)'>", message)
    )
    return match.group(1) if match else None
