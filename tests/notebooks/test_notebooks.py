"""The notebooks in ``notebooks/``: each runs headless on a tiny budget, is committed with the
figures of a real run, and has a Korean twin with the same code.

The twins are not executed again: their code is the English notebook's, token for token, and
every string that differs is Korean prose with the same format fields
(``test_korean_twin_has_the_same_code``), so nothing that runs can differ.

Executing a notebook replaces its ``parameters`` cell (the budget knobs) with the tiny values
below, so the whole file stays around a minute on a 2-core CPU.
"""

from __future__ import annotations

import ast
import os
import string
from pathlib import Path

import nbclient  # dev dependencies: the notebook tests never skip
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
ENGLISH = [path for path in NOTEBOOKS if not path.name.endswith(".ko.ipynb")]

# Budget knobs per notebook (stem without .ko): the smallest values that still run every cell.
# Depths 20 and 32: small CIFAR networks of the paper's table (8 and 14 exist too).
TINY = {
    "01_residual_block": "CHANNELS = 3\nSIZE = 16\nSTACK_DEPTH = 4\nSEED = 0",
    "02_gradient_flow": "DEPTH = 20\nSTEPS = 1\nBATCH_SIZE = 16",
    "03_degradation": (
        "DEPTHS = (20, 32)\nTRAIN_SUBSET = 64\nTEST_SUBSET = 32\nEPOCHS = 1\nBATCH_SIZE = 32\n"
        "LR = 0.025\nAUGMENT = False\nWARMUP_EPOCHS = 0\nSEEDS = (0,)"
    ),
    "04_loss_landscape": (
        "DEPTH = 20\nTRAIN_SUBSET = 64\nTEST_SUBSET = 32\nEPOCHS = 1\nWARMUP_EPOCHS = 0\n"
        "EVAL_SUBSET = 16\nPOINTS_1D = 3\nPOINTS_2D = 3"
    ),
    "05_lesion": (
        "DEPTH = 20\nTRAIN_SUBSET = 64\nTEST_SUBSET = 32\nEPOCHS = 1\nWARMUP_EPOCHS = 0\n"
        "EVAL_SUBSET = 32"
    ),
    "06_train_your_own": (
        'CLASSES = ("Trouser", "Bag")\nIMAGES_PER_CLASS = 8\nTEST_PER_CLASS = 3\n'
        'MODEL = "resnet20"\nIMAGE_SIZE = 16\nEPOCHS = 1\nWARMUP_EPOCHS = 0'
    ),
    "07_gradcam": (
        'MODEL = "resnet20"\nTRAIN_SUBSET = 64\nTEST_SUBSET = 32\nEPOCHS = 1\nN_IMAGES = 2\n'
        "WARMUP_EPOCHS = 0"
    ),
    "08_train_fast": (
        'RECIPE = "fashion-mnist-fast"\nBATCH_SIZE = 8\nTIMED_STEPS = 1\nMAX_STEPS = 2\n'
        "TEST_SUBSET = 64"
    ),
}


def _stem(path: Path) -> str:
    return path.name.removesuffix(".ipynb").removesuffix(".ko")


def _code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _parameters_cell(nb):
    tagged = [cell for cell in _code_cells(nb) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one code cell tagged 'parameters'"
    return tagged[0]


def _outputs(nb) -> list:
    return [output for cell in _code_cells(nb) for output in cell.get("outputs", [])]


def _png_count(nb) -> int:
    return sum("image/png" in output.get("data", {}) for output in _outputs(nb))


def _errors(nb) -> list[str]:
    return [
        f"{output.get('ename')}: {output.get('evalue')}"
        for output in _outputs(nb)
        if output.get("output_type") == "error"
    ]


class _WithoutText(ast.NodeTransformer):
    """An AST with the words taken out: string constants emptied, f-strings reduced to the
    expressions they format (Korean word order may move them), so that only the code is left."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        values = sorted(
            (ast.dump(self.visit(v)) for v in node.values if isinstance(v, ast.FormattedValue)),
        )
        return ast.Constant(value="f:" + "|".join(values))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node.value = self.visit(node.value)  # the format spec (".3g") is code: kept as it is
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Constant(value="") if isinstance(node.value, str) else node


def _code_without_text(source: str) -> str:
    return ast.dump(_WithoutText().visit(ast.parse(source)))


def _plain_strings(source: str) -> list[str]:
    """The string constants of ``source`` outside f-strings (an f-string's words may move)."""
    tree = ast.parse(source)
    in_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in in_fstrings
    ]


def _is_korean(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def _format_fields(text: str) -> list:
    """The ``str.format`` fields of ``text`` (name, spec, conversion), in any order."""
    try:
        return sorted(
            (f, s or "", c or "") for _, f, s, c in string.Formatter().parse(text) if f is not None
        )
    except ValueError:  # not a format string: its braces are the fields
        return sorted(ch for ch in text if ch in "{}")


def _same_strings_but_prose(english: str, korean: str) -> str:
    """'' when every string the twins do not share is Korean prose with the same format
    fields; else what differs. A name, a path or a model differs only if it is a bug."""
    for a, b in zip(_plain_strings(english), _plain_strings(korean)):
        if a != b and not _is_korean(b):
            return f"{a!r} became {b!r}, which is not Korean prose: code strings must be equal"
        if a != b and _format_fields(a) != _format_fields(b):
            return f"{a!r} and {b!r} format other fields"
    return ""


@pytest.mark.parametrize("path", ENGLISH, ids=lambda p: p.name)
def test_notebook_runs_on_a_tiny_budget(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    _parameters_cell(nb).source = TINY[_stem(path)]
    for cell in _code_cells(nb):
        cell.outputs = []
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    tmpdir.mkdir()
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    # One thread: two OpenMP threads spin badly on a CPU shared with other tests (conftest.py).
    client.execute(env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmpdir)})
    assert not _errors(nb)
    assert _png_count(nb) >= 1, "the run drew no figure"
    assert not list(workdir.iterdir()), "the notebook wrote into its working directory"
    # Its temporary folder is deleted when the kernel stops (torch may leave caches beside it).
    assert not list(tmpdir.glob("resnet-nb*")), "the notebook left its temporary folder behind"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_the_outputs_of_a_full_run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = _code_cells(nb)
    assert code[0] is _parameters_cell(nb), "the parameters cell must be the first code cell"
    assert _stem(path) in TINY, f"add tiny budget values for {path.name} to TINY"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "run all cells once, top to bottom"
    assert not _errors(nb)
    assert _png_count(nb) >= 1, "commit the notebook with its figures"


@pytest.mark.parametrize("path", ENGLISH, ids=lambda p: p.name)
def test_korean_twin_has_the_same_code(path: Path) -> None:
    twin = path.with_name(path.name.replace(".ipynb", ".ko.ipynb"))
    assert twin.is_file(), f"{twin.name} is missing"
    en = _code_cells(nbformat.read(path, as_version=4))
    ko = _code_cells(nbformat.read(twin, as_version=4))
    assert len(en) == len(ko)
    for index, (a, b) in enumerate(zip(en, ko)):
        same = _code_without_text(a.source) == _code_without_text(b.source)
        assert same, f"code cell {index} differs beyond comments and strings"
        differs = _same_strings_but_prose(a.source, b.source)
        assert not differs, f"code cell {index}: {differs}"
    # The Korean twin's markdown is Korean.
    text = "".join(cell.source for cell in nbformat.read(twin, as_version=4).cells)
    assert _is_korean(text)


@pytest.mark.parametrize(
    ("english", "korean", "found"),
    [
        ('plot(x, label="loss")', 'plot(x, label="손실")', ""),
        ('create_model("resnet20")', 'create_model("resnet32")', "not Korean prose"),
        ('print("{} of {:.2f}".format(a, b))', 'print("{:.2f}의 {}".format(b, a))', ""),
        ('print("{} of {:.2f}".format(a, b))', 'print("{}의 {}".format(a, b))', "other fields"),
    ],
)
def test_the_twin_check_tells_prose_from_code(english: str, korean: str, found: str) -> None:
    differs = _same_strings_but_prose(english, korean)
    assert (found in differs) if found else not differs


def test_every_notebook_is_listed_in_both_readmes() -> None:
    for readme in ("README.md", "README.ko.md"):
        listing = (NOTEBOOK_DIR / readme).read_text(encoding="utf-8")
        missing = [path.name for path in ENGLISH if path.name not in listing]
        assert not missing, f"{readme} does not list {missing}"
