"""Randomness that is a pure function of (seed, epoch), and the epoch bookkeeping every loader
shares (``set_epoch``, ``len()``, the shard of each rank)."""

from __future__ import annotations

import math

import numpy as np
import torch

from resnet.checks import whole_number
from resnet.errors import ConfigError

__all__ = ["epoch_generator", "EpochLoader"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that is a pure function of (seed, epoch).

    SeedSequence mixes both numbers, so nearby (seed, epoch) pairs give unrelated streams; a CPU
    generator makes the batches identical on every device.
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class EpochLoader:
    """What the tensor and the folder loader share: batches of one epoch at a time, chosen by
    ``set_epoch``; ``len()`` is the number of batches of this rank's shard.

    Sharding drops the remainder so every rank runs the same number of steps.
    """

    def _init_epochs(
        self, num_items: int, batch_size: int, rank: int, world_size: int, drop_last: bool
    ) -> None:
        batch_size = whole_number("batch_size", batch_size)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.num_samples = num_items // world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (seed, epoch)-determined batches the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)
