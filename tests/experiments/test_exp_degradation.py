import pytest

from resnet.experiments.degradation import degradation_table, run_degradation


def test_degradation_trains_both_kinds_and_computes_the_verdict(tmp_path, tiny_npz):
    result = run_degradation(
        dataset=tiny_npz, depths=(32, 20), epochs=2, batch_size=64, lr=0.05, augment=False,
        tolerance=0.01, out_dir=tmp_path, device="cpu", progress=False,
    )  # fmt: skip
    assert result["depths"] == [20, 32]
    assert set(result["summary"]) == {"plain20", "plain32", "resnet20", "resnet32"}
    summary = result["summary"]
    for net in summary.values():
        assert len(net["train_error_mean"]) == len(net["test_error_mean"]) == 2
        assert all(0.0 <= e <= 1.0 for e in net["train_error_mean"] + net["test_error_mean"])
        assert net["final_train_error"] == net["train_error_mean"][-1]
    # Plain and residual nets of one depth have the same parameters (shortcut option A).
    assert summary["plain20"]["parameters"] == summary["resnet20"]["parameters"]
    assert summary["plain32"]["parameters"] == summary["resnet32"]["parameters"]
    assert summary["plain32"]["parameters"] > summary["plain20"]["parameters"]
    verdict = result["verdict"]
    gap = summary["plain32"]["final_train_error"] - summary["plain20"]["final_train_error"]
    assert verdict["plain_train_gap"] == pytest.approx(gap)
    assert verdict["plain_deeper_has_higher_train_error"] == (gap > 0)
    res_gap = summary["resnet32"]["final_train_error"] - summary["resnet20"]["final_train_error"]
    assert verdict["resnet_deeper_matches_or_beats"] == (res_gap <= 0.01)
    table = degradation_table(result)
    assert table.count("\n") == 5 and "| resnet32 |" in table
    for run in result["runs"]:
        assert (tmp_path / "runs").exists() and run["last_checkpoint"].endswith(".safetensors")


def test_degradation_needs_two_depths(tmp_path):
    from resnet.errors import ConfigError

    with pytest.raises(ConfigError, match="two depths"):
        run_degradation(depths=(20,), out_dir=tmp_path, progress=False)
