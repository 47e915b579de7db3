"""The demo's report, in English (``report.md``) and Korean (``report.ko.md``): each claim of the
ResNet story in plain words, then the picture and the numbers measured in this run.

The prose lives in ``report_text.py``; this module only fills it with measured numbers, so every
number in a report comes from the results it is given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

from resnet.errors import ConfigError
from resnet.experiments.report_text import TEXT

__all__ = ["write_report", "write_reports", "summary_rows", "embedded_figures"]


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def _num(value: Optional[float]) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def summary_rows(results: dict, language: str = "en") -> list[tuple[str, str]]:
    """(measurement, value) pairs: the numbers the demo prints at the end and both reports use."""
    t = TEXT[language]
    rows = []
    if "block" in results:
        rows.append((t["sum_block"], f"{results['block']['identity_fraction']:.3f}"))
    for net in results.get("gradflow", {}).get("networks", []):
        value = f"{_num(net['ratio_init'])}, {_num(net['ratio_after'])}"
        rows.append((t["sum_gradflow"].format(label=net["label"]), value))
    for name, net in results.get("degradation", {}).get("summary", {}).items():
        value = f"{_pct(net['final_train_error'])} / {_pct(net['final_test_error'])}"
        rows.append((t["sum_degr"].format(label=name), value))
    for net in results.get("lesion", {}).get("networks", []):
        value = (
            f"{_pct(net['baseline_accuracy'])} / {_pct(net['mean_accuracy_after_deletion'])}"
            f" / {_pct(net['min_accuracy_after_deletion'])}"
        )
        rows.append((t["sum_lesion"].format(label=net["label"]), value))
    for net in results.get("landscape", {}).get("networks", []):
        rows.append((t["sum_land"].format(label=net["label"]), _num(net["sharpness_1d"])))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _figure(t: dict, results: dict, key: str) -> str:
    name = results.get("figures", {}).get(key)
    return f"![{t['fig_' + key]}]({name})" if name else ""


def _block_section(t: dict, results: dict) -> str:
    b = results["block"]
    numbers = t["block_numbers"].format(
        shape_in=tuple(b["input_shape"]),
        shape_out=tuple(b["output_shape"]),
        var_x=b["variance_identity"],
        var_f=b["variance_residual"],
        fraction=b["identity_fraction"],
        corr=b["correlation"],
        change=b["relative_change"],
    )
    return "\n\n".join([t["block_title"], t["block_text"], _figure(t, results, "block"), numbers])


def _gradflow_section(t: dict, results: dict) -> str:
    g = results["gradflow"]
    rows = [
        (
            net["label"],
            net["num_weights"],
            _num(net["norms_init"][0]),
            _num(net["norms_init"][-1]),
            _num(net["ratio_init"]),
            _num(net["spread_init"]),
            _num(net["ratio_after"]),
            _num(net["spread_after"]),
        )
        for net in g["networks"]
    ]
    table = _table(t["gradflow_header"], rows)
    finite = [
        n for n in g["networks"] if n["spread_init"] is not None and math.isfinite(n["spread_init"])
    ]
    lines = [t["gradflow_title"], t["gradflow_text"], _figure(t, results, "gradflow")]
    lines.append(t["gradflow_setup"].format(**g))
    lines.append(table)
    if finite:
        even = min(finite, key=lambda n: n["spread_init"])
        uneven = max(finite, key=lambda n: n["spread_init"])
        lines.append(
            t["gradflow_finding"].format(
                even=even["label"],
                even_spread=even["spread_init"],
                uneven=uneven["label"],
                uneven_spread=uneven["spread_init"],
            )
        )
    diverged = [n["label"] for n in g["networks"] if not _finite_list(n["norms_after"])]
    if diverged:
        lines.append(t["gradflow_diverged"].format(names=", ".join(diverged), steps=g["steps"]))
    return "\n\n".join(lines)


def _finite_list(values: list) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _degradation_section(t: dict, results: dict) -> str:
    from resnet.experiments.degradation import degradation_table

    d = results["degradation"]
    v = d["verdict"]
    s = d["summary"]
    fmt = {
        "shallow": v["shallow"],
        "deep": v["deep"],
        "plain_s": _pct(s[f"plain{v['shallow']}"]["final_train_error"]),
        "plain_d": _pct(s[f"plain{v['deep']}"]["final_train_error"]),
        "res_s": _pct(s[f"resnet{v['shallow']}"]["final_train_error"]),
        "res_d": _pct(s[f"resnet{v['deep']}"]["final_train_error"]),
        "plain_gap": 100 * v["plain_train_gap"],
        "res_gap": 100 * v["resnet_train_gap"],
        "tol": 100 * v["tolerance"],
        "same_gap": 100 * v["deep_resnet_vs_deep_plain_train_gap"],
    }
    plain_key = "degr_plain_yes" if v["plain_deeper_has_higher_train_error"] else "degr_plain_no"
    if v["resnet_deeper_beats"]:
        res_key = "degr_res_beats"
    elif v["resnet_deeper_matches_or_beats"]:
        res_key = "degr_res_matches"
    else:
        res_key = "degr_res_no"
    recipe = d["recipe"]
    setup = t["degr_setup"].format(
        dataset=d["dataset"], seeds=len(d["seeds"]), **{k: recipe[k] for k in recipe}
    )
    parts = [
        t["degr_title"],
        t["degr_text"],
        _figure(t, results, "degradation"),
        setup,
        degradation_table(d),
        t[plain_key].format(**fmt),
        t[res_key].format(**fmt),
        _spread_sentence(t, v, fmt),
    ]
    middle = v.get("middle_depths") or {}
    if middle.get("plain"):
        fmt["plain_mid"] = ", ".join(f"{k}: {_pct(e)}" for k, e in middle["plain"].items())
        fmt["res_mid"] = ", ".join(f"{k}: {_pct(e)}" for k, e in middle["resnet"].items())
        parts.append(t["degr_middle"].format(**fmt))
    parts.append(t["degr_same_depth"].format(**fmt))
    return "\n\n".join(parts)


def _spread_sentence(t: dict, v: dict, fmt: dict) -> str:
    """Whether each gap is beyond twice the seed-to-seed spread, from the verdict."""
    if v.get("plain_gap_beyond_spread") is None:
        return t["degr_one_seed"]
    return t["degr_spread"].format(
        **fmt,
        seeds=v["seeds"],
        plain_spread=100 * v["plain_spread"],
        res_spread=100 * v["resnet_spread"],
        res_gain=-fmt["res_gap"],
        plain_beyond=t["beyond" if v["plain_gap_beyond_spread"] else "within"],
        res_beyond=t["beyond" if v["resnet_gap_beyond_spread"] else "within"],
    )


def _lesion_section(t: dict, results: dict) -> str:
    lesion = results["lesion"]
    rows = [
        (
            net["label"],
            _pct(net["baseline_accuracy"]),
            _pct(net["mean_accuracy_after_deletion"]),
            _pct(net["min_accuracy_after_deletion"]),
            len(net["skipped_blocks"]),
        )
        for net in lesion["networks"]
    ]
    return "\n\n".join(
        [
            t["lesion_title"],
            t["lesion_text"],
            _figure(t, results, "lesion"),
            t["lesion_setup"].format(samples=lesion["eval_samples"]),
            _table(t["lesion_header"], rows),
        ]
    )


def _landscape_section(t: dict, results: dict) -> str:
    land = results["landscape"]
    rows = [
        (net["label"], _num(net["origin_loss"]), _num(net["sharpness_1d"]))
        for net in land["networks"]
    ]
    return "\n\n".join(
        [
            t["land_title"],
            t["land_text"],
            _figure(t, results, "landscape"),
            t["land_setup"].format(samples=land["eval_samples"], span=land["span"]),
            _table(t["land_header"], rows),
        ]
    )


def write_report(results: dict, path: Union[str, Path], language: str = "en") -> Path:
    """Write one report (Markdown, atomically) from the demo's ``results``.

    ``results`` holds the experiments' plain data under "block", "gradflow", "degradation",
    "lesion" and optionally "landscape"; "figures" maps those names to PNG file names next to
    the report; "meta" says how the run was made (command, device, wall time).
    """
    from resnet.io import atomic_write

    if language not in TEXT:
        raise ConfigError(f"unknown report language {language!r}: use one of {', '.join(TEXT)}")
    t = TEXT[language]
    meta = results.get("meta", {})
    parts = [t["title"], t["intro"].format(**{k: meta.get(k, "?") for k in t["intro_keys"]})]
    parts += [t["idea_title"], t["idea_text"]]
    for key, section in (
        ("block", _block_section),
        ("gradflow", _gradflow_section),
        ("degradation", _degradation_section),
        ("lesion", _lesion_section),
        ("landscape", _landscape_section),
    ):
        if key in results:
            parts.append(section(t, results))
    parts.append(t["summary_title"])
    parts.append(_table(t["summary_header"], summary_rows(results, language)))
    parts.append(t["reproduce"].format(command=meta.get("command", "resnet demo")))
    with atomic_write(path, "w") as handle:
        handle.write("\n\n".join(p.strip("\n") for p in parts if p) + "\n")
    return Path(path)


def write_reports(results: dict, out_dir: Union[str, Path]) -> list[Path]:
    """``report.md`` (English) and ``report.ko.md`` (Korean) in ``out_dir``."""
    out_dir = Path(out_dir)
    return [
        write_report(results, out_dir / "report.md", "en"),
        write_report(results, out_dir / "report.ko.md", "ko"),
    ]


def embedded_figures(report: Union[str, Path]) -> list[str]:
    """The image paths a Markdown report embeds (``![...](path)``), in order."""
    import re

    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", Path(report).read_text(encoding="utf-8"))
