import pytest

from resnet.errors import ConfigError
from resnet.experiments.degradation import _verdict, degradation_table, run_degradation


def _net(train_error: float, test_error: float, params: int = 10) -> dict:
    return {
        "final_train_error": train_error, "final_test_error": test_error,
        "final_train_error_std": 0.01, "final_test_error_std": 0.02,
        "seeds": [0, 1], "parameters": params,
    }  # fmt: skip


def test_verdict_is_computed_from_the_numbers():
    summary = {
        "plain20": _net(0.10, 0.12), "plain56": _net(0.15, 0.16),
        "resnet20": _net(0.10, 0.12), "resnet56": _net(0.105, 0.11),
    }  # fmt: skip
    verdict = _verdict(summary, (20, 56), tolerance=0.01)
    assert verdict["plain_deeper_has_higher_train_error"] is True
    assert verdict["plain_train_gap"] == pytest.approx(0.05)
    assert verdict["resnet_deeper_matches_or_beats"] is True
    assert verdict["resnet_deeper_beats"] is False
    summary["resnet56"] = _net(0.13, 0.14)
    assert _verdict(summary, (20, 56), tolerance=0.01)["resnet_deeper_matches_or_beats"] is False
    summary["plain56"] = _net(0.09, 0.1)
    assert _verdict(summary, (56, 20), 0.01)["plain_deeper_has_higher_train_error"] is False


def test_table_shows_mean_and_spread():
    table = degradation_table({"summary": {"plain20": _net(0.1, 0.2, 272474)}})
    assert "| plain20 | 272,474 | 10.00% ± 1.00 | 20.00% ± 2.00 |" in table


def test_degradation_needs_two_depths(tmp_path):
    with pytest.raises(ConfigError, match="two depths"):
        run_degradation(depths=(20,), progress=False)
    with pytest.raises(ConfigError, match=r"depths \[20, 56, 20\] repeat 20; give each once"):
        run_degradation(depths=(20, 56, 20), progress=False)
    # One seed twice trained the same nets twice and reported a spread of 0.00 over "2 seeds".
    with pytest.raises(ConfigError, match=r"seeds \[0, 1, 0\] repeat 0; give each once"):
        run_degradation(seeds=(0, 1, 0), progress=False)
    for tolerance in (-0.01, 1.5, float("nan")):  # NaN would make every verdict False
        with pytest.raises(ConfigError, match="tolerance must be from 0 to 1"):
            run_degradation(tolerance=tolerance, progress=False)


def test_a_subset_larger_than_the_data_is_refused(tiny_dataset):
    """It used to train on all 48 images while degradation.json recorded train_subset 1000."""
    with pytest.raises(
        ConfigError, match="a subset of 1000 is more than the 48 images of the train"
    ):
        run_degradation(dataset=tiny_dataset, train_subset=1000, test_subset=8, progress=False)


def test_a_test_subset_is_at_most_what_the_split_holds(tiny_dataset):
    """lesion and landscape score at most --eval-subset (500) test images: a smaller dataset is
    scored whole, as the engine's eval_subset does; only a train subset must fit."""
    from resnet.experiments.common import load_split

    assert len(load_split(tiny_dataset, "test", subset=500)) == len(tiny_dataset) == 48
    with pytest.raises(ConfigError, match="a subset of 500 is more than the 48 images"):
        load_split(tiny_dataset, "train", subset=500)
