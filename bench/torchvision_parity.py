"""Max-abs difference between our ImageNet models and torchvision's, with the same weights.

Not a speed benchmark: it prints the numbers the parity tests bound (< 1e-5), for the record.
Run: ``.venv/bin/python bench/torchvision_parity.py``.
"""

from __future__ import annotations

import sys

import torch
import torchvision

from resnet import create_model
from resnet.models.imagenet import TORCHVISION_NAMES
from resnet.models.profile import count_parameters

NAMES = TORCHVISION_NAMES


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    print(f"{'model':<20} {'params (M)':>11} {'max |ours - torchvision|':>26}")
    for name in NAMES:
        reference = getattr(torchvision.models, name)(weights=None).eval()
        ours = create_model(name).eval()
        ours.load_state_dict(reference.state_dict(), strict=True)
        with torch.no_grad():
            diff = (ours(x) - reference(x)).abs().max().item()
        print(f"{name:<20} {count_parameters(ours) / 1e6:>11.3f} {diff:>26.2e}")


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/torchvision_parity.py"))
