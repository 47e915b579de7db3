"""Randomness that is a pure function of (seed, epoch), shared by every loader."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["epoch_generator"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that is a pure function of (seed, epoch).

    SeedSequence mixes both numbers, so nearby (seed, epoch) pairs give unrelated streams; a CPU
    generator makes the batches identical on every device.
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
