"""One run of a command: the device resolved once, one numbered folder, the settings written
there, the column log and TensorBoard writer, and what happens on NaN or Ctrl-C.

Every command that trains or measures (train, exp, demo, detect) opens a ``Run`` first::

    run = Run.open(device="cuda:0", runs_dir="runs", name="resnet20-fashion-mnist")
    run.device         # torch.device, resolved here and nowhere else
    run.folder()       # runs/resnet20-fashion-mnist (or -2, -3, ...), created atomically
    run.child("seed0") # a sub-run inside that folder, on the same device

Everything above this module takes the run, never a device string or a folder path to re-check.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from resnet.device import resolve_device
from resnet.errors import ConfigError, NonFiniteLossError, ResnetError

__all__ = [
    "Run",
    "RunInterrupted",
    "NonFiniteLossError",
    "ColumnLog",
    "check_run_name",
    "make_run_dir",
    "remove_stale_temp_files",
]

# Temporary files of ``resnet.io.atomic_write`` older than this are left-overs of a killed run.
STALE_TEMP_SECONDS = 60.0


class RunInterrupted(ResnetError):
    """Ctrl-C (SIGINT) stopped the run; its last checkpoint is kept."""


def check_run_name(name: str) -> str:
    """``name`` if it is a plain folder name; a path, ``..`` or an empty name is a ConfigError.

    A run name never climbs out of the runs folder: ``--name ../../x`` is refused.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"run name must be a non-empty string, got {name!r}")
    bad = name in (".", "..") or "/" in name or "\\" in name or "\0" in name
    if bad or name != name.strip() or len(name) > 200:
        raise ConfigError(
            f"run name {name!r} is not a plain folder name; use letters, digits, '-' and '_' "
            "(put the folder itself in --runs-dir)"
        )
    return name


def make_run_dir(parent: Union[str, os.PathLike], name: str) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``, ... when it is taken; created empty.

    ``mkdir`` either creates the folder or fails, so two processes never get the same one.
    """
    check_run_name(name)
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"runs folder {parent} is a file; pass a folder to --runs-dir")
    parent.mkdir(parents=True, exist_ok=True)
    candidate, number = parent / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = parent / f"{name}-{number}"


def check_new_run_folder(folder: Union[str, os.PathLike]) -> None:
    """Refuse (``ConfigError``) a folder given for a new training run that already holds files:
    the run would overwrite another run's checkpoints and logs, or mix its own among them."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(
            f"output folder {folder} is not empty; pass a new folder "
            "(or --resume it, if it is a run to continue)"
        )


def remove_stale_temp_files(folder: Union[str, os.PathLike]) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files a killed atomic write left in ``folder``; return them."""
    removed = []
    now = time.time()
    for path in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime >= STALE_TEMP_SECONDS:
                path.unlink()
                removed.append(path)
    return removed


@dataclass
class Run:
    """Where a command runs (``device``) and writes (``folder()``), opened once per command."""

    device: torch.device
    runs_dir: Path  # the folder the run folder goes into
    name: str  # the run folder's name (numbered if taken)
    is_main: bool = True  # rank 0 of a torchrun job (or the only process): the one that writes
    dir: Optional[Path] = None  # the run folder, once created (or given, when resuming)
    settings: dict = field(default_factory=dict)  # the resolved settings, written by folder()

    @classmethod
    def open(
        cls,
        *,
        device: Union[str, torch.device] = "auto",
        runs_dir: Union[str, os.PathLike] = "runs",
        name: str = "run",
        folder: Union[str, os.PathLike, None] = None,
        settings: Optional[dict] = None,
    ) -> Run:
        """Resolve the device (a ConfigError if it is not there) and check the name.

        The numbered folder ``runs_dir/name[-N]`` is created by the first ``folder()`` call,
        after the command's inputs have been checked. An explicit ``folder`` (``--out-dir``) is
        used as it is: created if missing, refused if it is a file.
        """
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        resolved = resolve_device(device, local_rank)
        is_main = int(os.environ.get("RANK", "0")) == 0
        if folder is None:
            return cls(resolved, Path(runs_dir), check_run_name(name), is_main,
                       settings=dict(settings or {}))  # fmt: skip
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"output folder {folder} is a file; pass a folder")
        run = cls(resolved, folder.parent, folder.name or name, is_main, folder,
                  dict(settings or {}))  # fmt: skip
        if is_main:
            folder.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def resume(cls, run_dir: Union[str, os.PathLike], *, device: Union[str, torch.device]) -> Run:
        """The run of an existing folder, to continue training; stale temp files go."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir} is not a run folder; pass the folder a run wrote")
        run = cls.open(device=device, folder=run_dir)
        if run.is_main:
            remove_stale_temp_files(run_dir)
        return run

    def folder(self) -> Optional[Path]:
        """The run folder, created on first use with ``config.yaml`` of ``settings``; None on
        processes other than the main one, which write nothing."""
        if not self.is_main:
            return self.dir
        if self.dir is None:
            self.dir = make_run_dir(self.runs_dir, self.name)
            if self.settings:
                self.write_settings(self.settings)
        return self.dir

    def write_settings(self, settings: dict, filename: str = "config.yaml") -> None:
        """Write the resolved settings as YAML into the run folder (atomically)."""
        import yaml

        from resnet.io import atomic_write

        self.settings = dict(settings)
        folder = self.folder()
        if folder is not None:
            with atomic_write(folder / filename, "w") as handle:
                yaml.safe_dump(self.settings, handle, sort_keys=False)

    def child(self, name: str, settings: Optional[dict] = None) -> Run:
        """A run inside this run's folder (the demo's trainings), on the same device."""
        parent = self.folder()
        return Run(
            self.device,
            parent if parent is not None else self.runs_dir,
            check_run_name(name),
            self.is_main,
            settings=dict(settings or {}),
        )

    def column_log(
        self, columns: Sequence[tuple[str, str, str]], *, tensorboard: bool = False
    ) -> ColumnLog:
        """The per-epoch table of this run: ``metrics.csv``, TensorBoard and stdout."""
        return ColumnLog(self.folder() if self.is_main else None, columns, tensorboard=tensorboard)

    def interrupted(self) -> RunInterrupted:
        """The error for Ctrl-C: says what was kept and how to go on."""
        where = f"; its last checkpoint in {self.dir} is kept" if self.dir else ""
        return RunInterrupted(f"interrupted{where}")


class ColumnLog:
    """One fixed-width line per epoch, as airbench prints, plus ``metrics.csv`` (rewritten
    atomically) and TensorBoard scalars.

    ``columns`` is ``[(key, header, format spec), ...]``, e.g. ``("images_per_s", "img/s",
    ".0f")``: the key names the metrics.csv column, the header the terminal's. The first two
    (epoch and step) are not plotted.
    """

    def __init__(
        self, folder: Optional[Path], columns: Sequence[tuple[str, str, str]], *, tensorboard: bool
    ) -> None:
        self.folder = folder
        self.columns = [tuple(column) for column in columns]
        self.keys = [key for key, _, _ in self.columns]
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        self.header_printed = False
        if folder is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("tensorboard is not installed; skipping event files", file=sys.stderr)
            else:
                self.writer = SummaryWriter(log_dir=str(folder))

    def write(self, row: dict[str, Any], history: Optional[list[dict[str, Any]]] = None) -> None:
        """Record ``row``; ``history`` (all rows so far, e.g. after a resume) replaces the log's
        own list so metrics.csv always holds the whole run."""
        self.rows = list(history) if history is not None else [*self.rows, row]
        if self.folder is not None:
            from resnet.io import atomic_write

            buffer = io.StringIO()
            table = csv.DictWriter(buffer, fieldnames=self.keys, extrasaction="ignore")
            table.writeheader()
            table.writerows(self.rows)
            with atomic_write(self.folder / "metrics.csv", "w") as handle:
                handle.write(buffer.getvalue())
        if self.writer is not None:
            for key in self.keys[2:]:
                if isinstance(row.get(key), (int, float)):
                    self.writer.add_scalar(key.replace("_", "/", 1), row[key], row["step"])
            self.writer.flush()
        self.print_row(row)

    def print_row(self, row: dict[str, Any]) -> None:
        widths = [max(len(header), 6) for _, header, _ in self.columns]
        if not self.header_printed:
            headers = [header for _, header, _ in self.columns]
            print(" ".join(f"{h:>{w}}" for h, w in zip(headers, widths)), flush=True)
            self.header_printed = True
        cells = []
        for (key, _, spec), width in zip(self.columns, widths):
            value = row.get(key)
            cells.append(f"{value:>{width}{spec}}" if value is not None else " " * width)
        print(" ".join(cells), flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
