"""What a run leaves behind besides checkpoints: metrics.csv, TensorBoard events, the column log.

The column log prints one fixed-width line per epoch, as airbench does, so a terminal (or a log
file) reads as a table.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Optional

from resnet.io import atomic_write

__all__ = ["RunLog", "next_run_dir"]


def next_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs_dir/name``, or ``name-2``, ``name-3``, ... when it is taken; created empty."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    candidate, number = runs_dir / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = runs_dir / f"{name}-{number}"


class RunLog:
    """Per-epoch rows to metrics.csv (rewritten atomically), TensorBoard and stdout."""

    def __init__(self, run_dir: Optional[Path], eval_split: str, *, tensorboard: bool) -> None:
        self.run_dir = run_dir
        self.eval_split = eval_split
        self.columns = [
            "epoch",
            "step",
            "train_loss",
            "train_acc",
            f"{eval_split}_loss",
            f"{eval_split}_acc",
            "lr",
            "images_per_s",
            "seconds",
        ]
        self.writer = None
        if run_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("tensorboard is not installed; skipping event files", file=sys.stderr)
            else:
                self.writer = SummaryWriter(log_dir=str(run_dir))
        self.header_printed = False

    def write(self, history: list[dict[str, Any]]) -> None:
        """Record the last row of ``history`` and rewrite metrics.csv with all rows."""
        row = history[-1]
        if self.run_dir is not None:
            buffer = io.StringIO()
            table = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore")
            table.writeheader()
            table.writerows(history)
            with atomic_write(self.run_dir / "metrics.csv", "w") as handle:
                handle.write(buffer.getvalue())
        if self.writer is not None:
            for key in self.columns[2:]:
                self.writer.add_scalar(key.replace("_", "/", 1), row[key], row["step"])
            self.writer.flush()
        self.print_row(row)

    def print_row(self, row: dict[str, Any]) -> None:
        split = self.eval_split
        if not self.header_printed:
            print(
                f"{'epoch':>6} {'step':>8} {'train_loss':>10} {'train_acc':>9} "
                f"{split + '_loss':>9} {split + '_acc':>9} {'lr':>9} {'img/s':>8} {'seconds':>8}"
            )
            self.header_printed = True
        print(
            f"{row['epoch']:>6d} {row['step']:>8d} {row['train_loss']:>10.4f} "
            f"{row['train_acc']:>9.4f} {row[split + '_loss']:>9.4f} {row[split + '_acc']:>9.4f} "
            f"{row['lr']:>9.5f} {row['images_per_s']:>8.0f} {row['seconds']:>8.1f}",
            flush=True,
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
