"""Argument parsing. Real-valued flags: every one is parsed by ``resnet.cli.arguments.real``, so
``nan``, ``inf`` and values out of range end in one ``error:`` line at parse time, before anything
runs. File arguments may come among the options, in any order."""

from __future__ import annotations

import argparse

import pytest

from resnet.cli import build_parser, main
from resnet.cli.arguments import count, real


def test_real_takes_finite_numbers_in_range_only():
    rate = real(0, above=True)
    assert rate("0.1") == 0.1 and rate("1e3") == 1000.0
    fraction = real(0, 1)
    assert fraction("0") == 0.0 and fraction("1") == 1.0
    assert real()("-2.5") == -2.5
    refused = [(rate, "0"), (rate, "-1"), (fraction, "1.01"), (fraction, "-0.0001")]
    refused += [(real(), "nan"), (real(), "inf"), (real(), "-inf"), (real(), "ten")]
    for parse, text in refused:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got '{text}'"):
            parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a finite number > 0, got"):
        rate("nan")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a finite number from 0 to 1"):
        fraction("2")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser) for every leaf sub-command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _commands(child, (*path, name))


def _real_flags():
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            assert action.type is not float, f"{' '.join(path)} {action.option_strings}: use real()"
            if getattr(action.type, "__name__", "") == "real":
                yield path, parser, action


REAL_FLAGS = [(path, action.option_strings[0]) for path, _, action in _real_flags()]


def test_the_walk_finds_the_real_flags():
    assert len(REAL_FLAGS) >= 12  # train 3, exp 5, detect 2, export 2, explain 1
    assert (("exp", "gradflow"), "--lr") in REAL_FLAGS and (("explain",), "--alpha") in REAL_FLAGS


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize(
    "path, flag", REAL_FLAGS, ids=[" ".join(p) + f" {f}" for p, f in REAL_FLAGS]
)
def test_every_real_flag_refuses_non_finite_values(
    path, flag, value, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were, not into the checkout
    parser = dict(_commands(build_parser()))[path]
    argv = [*path]
    for action in parser._actions:  # the required arguments, with placeholder values
        placeholder = next(iter(action.choices)) if action.choices else "placeholder"
        if not action.option_strings and action.nargs in (None, "+"):
            argv.append(placeholder)
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], placeholder]
    assert main([*argv, flag, value]) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # argparse's usage lines come first, then its one error line
    assert "Traceback" not in err and last.count("error:") == 1
    assert flag in last or "train" in path, last  # train's flags: the config names the field
    assert "finite" in last and value in last
    assert list(tmp_path.iterdir()) == []


# `resnet train`'s flags set TrainConfig fields, which the config checks with the field's range.
CONFIG_FLAGS = ("train",)


def _whole_flags():
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if path[:1] == CONFIG_FLAGS:
                continue
            where = f"{' '.join(path)} {action.option_strings}"
            assert action.type is not int, f"{where}: use count() (a negative or 0 ran on)"
            if getattr(action.type, "__name__", "") == "count":
                yield path, action


WHOLE_FLAGS = [(path, action.option_strings[0]) for path, action in _whole_flags()]


def test_count_takes_whole_numbers_in_range_only():
    layers = count(0, 5)
    assert layers("0") == 0 and layers("5") == 5 and count(1)("1000000") == 1000000
    for parse, text in [(layers, "6"), (layers, "-1"), (count(1), "0"), (count(0), "1.5")]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got '{text}'"):
            parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number from 0 to 5"):
        layers("9")


def test_the_walk_finds_the_whole_number_flags():
    assert len(WHOLE_FLAGS) >= 30
    assert (("detect", "train"), "--seed") in WHOLE_FLAGS and (
        ("eval",),
        "--tta-shift",
    ) in WHOLE_FLAGS


@pytest.mark.parametrize(
    "path, flag", WHOLE_FLAGS, ids=[" ".join(p) + f" {f}" for p, f in WHOLE_FLAGS]
)
def test_every_whole_number_flag_refuses_a_negative_at_parse_time(
    path, flag, tmp_path, capsys, monkeypatch
):
    """`detect eval --seed -1` reached numpy as "ValueError: expected non-negative integer",
    `detect train --max-steps 0` trained nothing and saved the run, `exp block --size 100000`
    would allocate 120 GB: every whole-number flag has a range, checked before anything runs."""
    monkeypatch.chdir(tmp_path)
    parser = dict(_commands(build_parser()))[path]
    argv = [*path]
    for action in parser._actions:
        placeholder = next(iter(action.choices)) if action.choices else "placeholder"
        if not action.option_strings and action.nargs in (None, "+"):
            argv.append(placeholder)
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], placeholder]
    assert main([*argv, flag, "-1"]) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert "Traceback" not in err and flag in last and "expected a whole number" in last, last
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "ordered, mixed",
    [
        (
            ["predict", "--checkpoint", "c", "--topk", "3", "a.png", "b.png"],
            ["predict", "--checkpoint", "c", "a.png", "--topk", "3", "b.png"],
        ),
        (
            ["explain", "--checkpoint", "c", "--out", "o", "a.png", "b.png"],
            ["explain", "a.png", "--checkpoint", "c", "b.png", "--out", "o"],
        ),
        (
            ["detect", "predict", "--seed", "3", "run", "a.png", "b.png"],
            ["detect", "predict", "run", "a.png", "--seed", "3", "b.png"],
        ),
        (["models", "--json", "resnet*"], ["models", "resnet*", "--json"]),
    ],
    ids=["predict", "explain", "detect-predict", "models"],
)
def test_file_arguments_may_come_among_the_options(ordered, mixed):
    """Plain argparse stopped at the file after an option: "unrecognized arguments: b.png"."""
    parser = build_parser()
    assert vars(parser.parse_args(mixed)) == vars(parser.parse_args(ordered))


def test_a_double_dash_still_ends_the_options():
    args = build_parser().parse_args(["predict", "--checkpoint", "c", "--", "-x.png", "a.png"])
    assert args.inputs == ["-x.png", "a.png"] and args.checkpoint == "c"


def test_the_model_table_keeps_its_columns_for_long_names(capsys):
    """legacy_seresnext101_32x4d (25 characters) pushed its row's columns out of line."""
    assert main(["models", "legacy_seresnext*"]) == 0
    lines = capsys.readouterr().out.splitlines()[:-1]  # the last line is the GFLOPs note
    assert len(lines) == 4
    assert len({line.index(" imagenet") for line in lines[1:]} | {lines[0].index(" family")}) == 1
