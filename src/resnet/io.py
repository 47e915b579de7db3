"""Atomic file writes (a run killed at any moment never leaves a half-written file behind),
strict YAML reading (a key given twice is an error, not a silent last-one-wins) and output
file names that never collide."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_save_json", "load_yaml", "output_names"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def atomic_save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that raises ``yaml.YAMLError`` naming a key a mapping gives twice
    (PyYAML keeps the last value silently, so ``lr: 0.1`` ... ``lr: 0.5`` trained at 0.5)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *defaults": keys given beside it override the merged ones
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # SafeLoader's own error names it below
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def output_names(stems: Sequence[str], suffix: str) -> list[str]:
    """``<stem><suffix>`` for each input's stem, or ``<stem>-2<suffix>`` (``-3``, ...) where an
    earlier input took that name (``a/x.png`` and ``b/x.png``), so that no output file written
    into one folder replaces another."""
    taken: set[str] = set()
    names = []
    for stem in stems:
        name, count = f"{stem}{suffix}", 1
        while name in taken:
            count += 1
            name = f"{stem}-{count}{suffix}"
        taken.add(name)
        names.append(name)
    return names
