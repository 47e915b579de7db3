"""One tiny end-to-end demo: it trains the degradation nets once and every invariant of the
degradation result, the lesion on what it trained, and both reports is checked on it."""

from pathlib import Path

import pytest

from resnet.experiments.demo import DemoBudget, run_demo
from resnet.experiments.report import embedded_figures

TINY = DemoBudget(
    gradflow_depth=20, gradflow_steps=1, depths=(32, 20), train_subset=None, test_subset=None,
    epochs=2, batch_size=32, lesion_subset=32, landscape=True, landscape_points_1d=3,
    landscape_points_2d=3, landscape_subset=16,
)  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_npz):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out_dir=out, dataset=tiny_npz, device="cpu", budget=TINY, progress=False)


def test_degradation_curves_table_and_verdict(demo):
    result = demo["degradation"]
    assert result["depths"] == [20, 32]
    summary = result["summary"]
    assert set(summary) == {"plain20", "plain32", "resnet20", "resnet32"}
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


def test_lesion_ran_on_the_trained_deep_nets(demo):
    nets = demo["lesion"]["networks"]
    assert [n["label"] for n in nets] == ["plain-32", "resnet-32"]
    for net in nets:
        assert len(net["blocks"]) == 15 and net["skipped_blocks"] == ["layer2.0", "layer3.0"]
        assert net["checkpoint"].endswith("last.safetensors")
    assert demo["lesion"]["eval_samples"] == 32


def test_reports_embed_existing_figures_of_every_experiment(demo):
    out = Path(demo["out_dir"])
    for report in ("report.md", "report.ko.md"):
        path = out / report
        assert path.is_file()
        figures = embedded_figures(path)
        names = ("block", "gradflow", "degradation", "lesion", "landscape")
        assert figures == [f"{name}.png" for name in names]
        for figure in figures:
            assert (out / figure).is_file() and (out / figure).stat().st_size > 1000
            assert (out / figure).read_bytes()[:4] == b"\x89PNG"
        text = path.read_text(encoding="utf-8")
        # The measured numbers appear in the text.
        assert f"{demo['block']['identity_fraction']:.3f}" in text
    assert "성능 저하" in (out / "report.ko.md").read_text(encoding="utf-8")
    for name in ("block", "gradflow", "degradation", "lesion", "landscape", "results"):
        assert (out / f"{name}.json").is_file()
