"""``resnet exp NAME ...`` (block, gradflow, degradation, landscape, lesion) and ``resnet demo``.

Each command calls one library function in ``resnet.experiments``, then writes its JSON and PNG
into ``--out-dir`` (default: a new numbered folder under ``runs/``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from resnet.cli.arguments import count, real
from resnet.errors import ConfigError

if TYPE_CHECKING:
    from resnet.run import Run

__all__ = ["register"]


def _common(
    parser: argparse.ArgumentParser,
    *,
    data: bool = True,
    seed: bool = True,
    dataset: str | None = "fashion-mnist",
) -> None:
    parser.add_argument("--out-dir", default=None, help="output folder (default: runs/NAME-N)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    if seed:
        parser.add_argument("--seed", type=count(0), default=0, help="random seed")
    if data:
        parser.add_argument(
            "--dataset",
            default=dataset,
            help="dataset name, .npz or image folder (default: %s)"
            % (dataset or "the checkpoint's"),
        )
        parser.add_argument("--data-dir", default=None, help="where the dataset files are")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def register(subparsers: argparse._SubParsersAction) -> None:
    exp = subparsers.add_parser("exp", help="run one experiment of the ResNet story")
    names = exp.add_subparsers(dest="experiment", metavar="NAME", required=True)

    block = names.add_parser("block", help="ResidualBlock(3) on a (1,3,64,64) input")
    block.add_argument("--channels", type=count(1, 1024), default=3, help="channels of the block")
    block.add_argument("--size", type=count(1, 1024), default=64, help="input height and width")
    _common(block, data=False)
    block.set_defaults(func=_block)

    grad = names.add_parser("gradflow", help="gradient norm of every layer, by depth")
    grad.add_argument("--depth", type=count(1), default=56, choices=(20, 32, 44, 56, 110))
    grad.add_argument("--steps", type=count(1), default=10, help="SGD steps before the 2nd probe")
    grad.add_argument("--batch-size", type=count(1), default=128)
    grad.add_argument("--lr", type=real(0, above=True), default=0.01, help="lr of the probe steps")
    grad.add_argument(
        "--norms", nargs="+", default=["batch", "none"], choices=("batch", "none", "group")
    )
    _common(grad)
    grad.set_defaults(func=_gradflow)

    degr = names.add_parser("degradation", help="train plain and residual nets of 2+ depths")
    degr.add_argument("--depths", type=count(1), nargs="+", default=[20, 56])
    degr.add_argument("--seeds", type=count(0), nargs="+", default=[0], help="one run per seed")
    degr.add_argument(
        "--train-subset",
        type=count(1),
        default=None,
        help="N train images (the first N; spread over data stored class by class)",
    )
    degr.add_argument(
        "--test-subset",
        type=count(1),
        default=None,
        help="at most N test images (as --train-subset)",
    )
    degr.add_argument("--epochs", type=count(1), default=10)
    degr.add_argument("--batch-size", type=count(1), default=128)
    degr.add_argument("--lr", type=real(0, above=True), default=0.1)
    degr.add_argument("--schedule", default="cosine", choices=("cosine", "onecycle", "constant"))
    degr.add_argument("--warmup-epochs", type=real(0), default=0.0, help="linear lr warmup")
    degr.add_argument("--no-augment", action="store_true", help="no crop/flip augmentation")
    degr.add_argument("--amp", default="off", choices=("auto", "bf16", "off"),
                      help="one precision for every net (auto: bf16 where native)")  # fmt: skip
    degr.add_argument("--zero-init-residual", action="store_true",
                      help="start each residual block as the identity (Goyal 2017)")  # fmt: skip
    degr.add_argument("--curve-every", type=count(1), default=None,
                      help="training error every N iterations (per-iteration curves)")  # fmt: skip
    degr.add_argument(
        "--tolerance", type=real(0, 1), default=0.01, help="'matches' margin (0.01 = 1 point)"
    )
    _common(degr, seed=False)
    degr.set_defaults(func=_degradation)

    for name, helptext, func in (
        ("landscape", "loss around trained checkpoints (filter-normalized)", _landscape),
        ("lesion", "delete one block at a time from trained checkpoints", _lesion),
    ):
        sub = names.add_parser(name, help=helptext)
        sub.add_argument(
            "--checkpoint",
            action="append",
            required=True,
            metavar="[LABEL=]PATH",
            help="a run folder or checkpoint; repeat for plain and residual",
        )
        sub.add_argument(
            "--eval-subset",
            type=count(1),
            default=500,
            help="at most N test images (as --train-subset)",
        )
        if name == "landscape":
            sub.add_argument("--points", type=count(1), default=21, help="odd number of 1D points")
            sub.add_argument("--points-2d", type=count(1), default=11, help="odd grid side")
            sub.add_argument("--span", type=real(0, above=True), default=1.0, help="largest step")
            sub.add_argument("--no-2d", action="store_true", help="only the 1D curve")
        _common(sub, dataset=None)
        sub.set_defaults(func=func)

    demo = subparsers.add_parser("demo", help="the whole ResNet story, measured (~10 min CPU)")
    demo.add_argument("--full", action="store_true", help="longer, more convincing version")
    demo.add_argument("--out-dir", default=None, help="output folder (default: runs/demo-N)")
    demo.add_argument("--data-dir", default=None, help="where Fashion-MNIST is")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    demo.add_argument("--seed", type=count(0), default=0, help="random seed")
    demo.set_defaults(func=_demo)


def _open_run(args: argparse.Namespace, prefix: str) -> Run:
    """The command's run: its device resolved once, its folder ``--out-dir`` or runs/PREFIX-N."""
    from resnet.run import Run

    return Run.open(device=args.device, runs_dir="runs", name=prefix, folder=args.out_dir)


def _finish(run: Run, name: str, result: dict, plot) -> int:
    from resnet.experiments.common import save_result

    out = run.folder()
    save_result(out / f"{name}.json", result)
    figure = plot(result, out / f"{name}.png")
    print(f"wrote {out / f'{name}.json'} and {figure}")
    return 0


def _block(args: argparse.Namespace) -> int:
    from resnet.experiments.block import format_block, run_block
    from resnet.experiments.plotting import plot_block

    if args.channels < 1 or args.size < 3:
        raise ConfigError("--channels must be >= 1 and --size >= 3")
    run = _open_run(args, "exp-block")
    result = run_block(args.channels, args.size, seed=args.seed)
    print(format_block(result))
    return _finish(run, "block", result, plot_block)


def _gradflow(args: argparse.Namespace) -> int:
    from resnet.experiments.gradflow import run_gradflow
    from resnet.experiments.plotting import plot_gradflow

    run = _open_run(args, "exp-gradflow")
    result = run_gradflow(
        args.dataset, depth=args.depth, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, norms=args.norms, seed=args.seed, data_dir=args.data_dir, run=run,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"{'network':<24} {'first/last (init)':>18} {'first/last (after)':>19}")
    for net in result["networks"]:
        print(f"{net['label']:<24} {net['ratio_init']:>18.3g} {net['ratio_after']:>19.3g}")
    return _finish(run, "gradflow", result, plot_gradflow)


def _degradation(args: argparse.Namespace) -> int:
    from resnet.experiments.degradation import degradation_table, run_degradation
    from resnet.experiments.plotting import plot_degradation

    run = _open_run(args, "exp-degradation")
    result = run_degradation(
        dataset=args.dataset, data_dir=args.data_dir, depths=args.depths, seeds=args.seeds,
        train_subset=args.train_subset, test_subset=args.test_subset, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, augment=not args.no_augment, tolerance=args.tolerance,
        amp=args.amp, curve_every=args.curve_every, zero_init_residual=args.zero_init_residual,
        run=run, progress=not args.quiet,
    )  # fmt: skip
    print(degradation_table(result))
    verdict = result["verdict"]
    print(
        f"deeper plain net has higher training error: "
        f"{verdict['plain_deeper_has_higher_train_error']} "
        f"({100 * verdict['plain_train_gap']:+.2f} points); deeper ResNet matches or beats: "
        f"{verdict['resnet_deeper_matches_or_beats']} ({100 * verdict['resnet_train_gap']:+.2f})"
    )
    return _finish(run, "degradation", result, plot_degradation)


def _checkpoints(values: list[str]) -> dict[str, str]:
    checkpoints = {}
    for value in values:
        label, _, path = value.rpartition("=")
        label = label or Path(path.rstrip("/")).name
        if label in checkpoints:
            raise ConfigError(f"two checkpoints are labelled {label!r}; write LABEL=PATH")
        checkpoints[label] = path
    return checkpoints


def _landscape(args: argparse.Namespace) -> int:
    from resnet.experiments.landscape import run_landscape
    from resnet.experiments.plotting import plot_landscape

    run = _open_run(args, "exp-landscape")
    result = run_landscape(
        _checkpoints(args.checkpoint), dataset=args.dataset, data_dir=args.data_dir,
        points_1d=args.points, points_2d=args.points_2d, span=args.span, two_d=not args.no_2d,
        eval_subset=args.eval_subset, seed=args.seed, run=run, progress=not args.quiet,
    )  # fmt: skip
    for net in result["networks"]:
        print(f"{net['label']:<24} loss at origin {net['origin_loss']:.4f}  "
              f"rise at the edge {net['sharpness_1d']:.4f}")  # fmt: skip
    return _finish(run, "landscape", result, plot_landscape)


def _lesion(args: argparse.Namespace) -> int:
    from resnet.experiments.lesion import run_lesion
    from resnet.experiments.plotting import plot_lesion

    run = _open_run(args, "exp-lesion")
    result = run_lesion(
        _checkpoints(args.checkpoint), dataset=args.dataset, data_dir=args.data_dir,
        eval_subset=args.eval_subset, run=run, progress=not args.quiet,
    )  # fmt: skip
    for net in result["networks"]:
        mean = net["mean_accuracy_after_deletion"]
        print(f"{net['label']:<24} full {100 * net['baseline_accuracy']:.2f}%  mean after "
              f"one deletion {100 * mean:.2f}%" if mean is not None else net["label"])  # fmt: skip
    return _finish(run, "lesion", result, plot_lesion)


def _demo(args: argparse.Namespace) -> int:
    from resnet.experiments.demo import run_demo

    command = "resnet demo" + " --full" * args.full
    for flag, value in (("--out-dir", args.out_dir), ("--data-dir", args.data_dir)):
        command += f" {flag} {value}" if value is not None else ""
    command += f" --device {args.device}" * (args.device != "auto")
    command += f" --seed {args.seed}" * (args.seed != 0)
    run = _open_run(args, "demo")  # a missing device fails here, before any work
    run_demo(run=run, data_dir=args.data_dir, seed=args.seed, full=args.full, command=command)
    return 0
