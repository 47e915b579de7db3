"""Pickles of numpy arrays, read so that they cannot run code: Detectron's ``R-50.pkl`` and
PaddlePaddle's ``.pdparams`` (``paddle.save`` of a state dict: a dict of arrays at protocol 4,
with a ``StructuredToParameterName@@`` dict of names beside them).

A pickle names the functions that rebuild its objects, and loading it calls them, so an
unpickler that admits any would run whatever the file asks. This one admits only what a dict
of numpy arrays needs (written by Python 2 or 3, numpy 1 or 2) and refuses anything else
before it runs.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from resnet.errors import WeightsError

__all__ = ["read_array_pickle"]

# What a pickle of numpy arrays (written by Python 2 or 3, numpy 1 or 2) needs, and nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how Python 3 writes an array's bytes at protocol 2
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not an array")
        with warnings.catch_warnings():  # numpy 2 renamed numpy.core, and says so
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def read_array_pickle(path: Path) -> dict[str, Tensor]:
    """``{name: float32 tensor}``: the arrays of a pickled dict (under ``blobs`` in Detectron's
    files, ``model`` in detectron2's); other values (Paddle's name table, optimizer momenta)
    are left out."""
    try:
        with path.open("rb") as handle:
            data = _ArraysOnly(handle, encoding="latin1").load()  # Python 2's pickles too
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise WeightsError(
            f"{path}: not a pickle of arrays only ({error}); this package unpickles numpy "
            "weights (Detectron's R-50.pkl, Paddle's .pdparams) and nothing that could run code"
        ) from None
    if isinstance(data, Mapping):
        data = data.get("blobs", data.get("model", data))
    if not isinstance(data, Mapping):
        raise WeightsError(f"{path}: a pickle without a dict of arrays ({type(data).__name__})")
    return {
        str(key): torch.from_numpy(np.asarray(value, dtype=np.float32))
        for key, value in data.items()
        if isinstance(value, np.ndarray) and not str(key).endswith("_momentum")
    }
