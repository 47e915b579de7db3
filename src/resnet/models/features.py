"""``features_only`` models: return the feature map of each selected stage instead of logits."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from resnet.checks import is_whole
from resnet.errors import ConfigError

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """Wraps a network and returns ``[stage_i(x) for i in out_indices]``, e.g. for an FPN.

    ``feature_info`` lists only the returned stages, with their channels and total stride.
    """

    def __init__(self, model: nn.Module, out_indices: Optional[tuple[int, ...]] = None) -> None:
        super().__init__()
        num_stages = len(model.feature_info)
        indices = tuple(range(num_stages)) if out_indices is None else tuple(out_indices)
        if not all(is_whole(i) for i in indices):  # 1.5 passed the range check, then never matched
            raise ConfigError(
                f"out_indices {out_indices} must be whole stage numbers, e.g. (1, 2, 3)"
            )
        if not indices or any(not 0 <= i < num_stages for i in indices):
            raise ConfigError(
                f"out_indices {out_indices} out of range: this model has stages 0..{num_stages - 1}"
            )
        if list(indices) != sorted(set(indices)):  # features come in stage order, once each
            raise ConfigError(
                f"out_indices {out_indices} must list each stage once, in increasing order "
                f"(e.g. {tuple(sorted(set(indices)))}): the features come in stage order"
            )
        indices = tuple(int(i) for i in indices)
        self.model = model
        self.out_indices = indices
        self.feature_info = [model.feature_info[i] for i in indices]
        self.model_name = getattr(model, "model_name", type(model).__name__)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.model.forward_stem(x)
        features = []
        for index, stage in enumerate(self.model.stages()):
            if index > max(self.out_indices):
                break  # later stages are not needed
            x = stage(x)
            if index in self.out_indices:
                features.append(x)
        return features
