"""Parameter counts against the papers: arXiv 1512.03385 Table 6 and Zagoruyko & Komodakis 2016."""

import pytest

from resnet import create_model
from resnet.models.profile import count_gflops, count_parameters

PAPER_PARAMS_M = {
    "resnet20": 0.27,
    "resnet32": 0.46,
    "resnet44": 0.66,
    "resnet56": 0.85,
    "resnet110": 1.7,
    "resnet1202": 19.4,
    "wrn28_10": 36.5,
}


@pytest.mark.parametrize("name, expected", PAPER_PARAMS_M.items())
def test_parameter_count_within_two_percent_of_the_paper(name, expected):
    params_m = count_parameters(create_model(name)) / 1e6
    assert params_m == pytest.approx(expected, rel=0.02)


def test_shortcut_b_adds_projection_parameters():
    a = count_parameters(create_model("resnet20", shortcut="A"))
    b = count_parameters(create_model("resnet20", shortcut="B"))
    # Two projections: 16->32 and 32->64 1x1 convs with their BN.
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


@pytest.mark.parametrize("name, gflops", [("resnet18", 1.81), ("resnet50", 4.09)])
def test_gflops_match_torchvisions_table(name, gflops):
    assert count_gflops(create_model(name), (3, 224, 224)) == pytest.approx(gflops, abs=0.01)
