"""The MAT-file reader against scipy's (``scipy.io.savemat`` writes, both read): numbers of
every class, characters, cells and structs, compressed as MATLAB 7 saves or not; what it does
not read is refused in one line."""

import io

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from resnet.data.matlab import read_mat
from resnet.errors import DataError


def _saved(variables: dict, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, do_compression=compressed)
    return buffer.getvalue()


def _synsets() -> np.ndarray:
    """A struct array as ImageNet's devkit meta.mat holds one: a column of synsets."""
    fields = ["ILSVRC2012_ID", "WNID", "words", "num_children", "children"]
    synsets = np.zeros((3, 1), dtype=[(name, "O") for name in fields])
    rows = [
        (1, "n02119789", "kit fox, Vulpes macrotis", 0, np.zeros((1, 0))),
        (2, "n02100735", "English setter", 0, np.zeros((1, 0))),
        (1001, "n00001740", "entity", 2, np.array([[1, 2]], dtype=np.uint8)),
    ]
    for index, row in enumerate(rows):
        for name, value in zip(fields, row):
            synsets[index, 0][name] = value
    return synsets


NUMBERS = {
    f"a_{dtype}": np.arange(6, dtype=dtype).reshape(2, 3)
    for dtype in ("float64", "float32", "int8", "uint8", "int16", "uint16", "int32", "uint32")
}


@pytest.mark.parametrize("compressed", [False, True])
def test_numbers_characters_cells_and_structs_read_as_scipy_reads_them(compressed):
    cell = np.empty((2, 2), dtype=object)
    cell[:] = [[1.5, "x"], [np.zeros((0, 0)), np.arange(3)]]
    variables = {
        **NUMBERS,
        "cube": np.arange(24.0).reshape(2, 3, 4),
        "rows": np.array(["ab", "cd"]),
    }
    variables |= {"text": "héllo", "empty": "", "cell": cell, "synsets": _synsets()}
    data = _saved(variables, compressed)
    ours, theirs = read_mat(data, "t.mat"), scipy.io.loadmat(io.BytesIO(data))
    for name in (*NUMBERS, "cube"):
        assert ours[name].dtype == theirs[name].dtype
        np.testing.assert_array_equal(ours[name], theirs[name])
    assert ours["rows"] == ["ab", "cd"] and ours["text"] == "héllo" and ours["empty"] == ""
    assert ours["cell"].shape == (2, 2) and ours["cell"][0, 1] == "x"
    np.testing.assert_array_equal(ours["cell"][1, 1], theirs["cell"][1, 1])
    entity = ours["synsets"][2]
    assert entity["WNID"] == "n00001740" and entity["words"] == "entity"
    np.testing.assert_array_equal(entity["children"], [[1, 2]])
    assert [s["WNID"] for s in ours["synsets"]] == ["n02119789", "n02100735", "n00001740"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"MATLAB 7.3 MAT-file, Platform: GLNXA64" + bytes(600),
            "MAT v7.3 file .HDF5.; save it with -v7",
        ),
        (b"\x89PNG\r\n" + bytes(200), "not a MATLAB MAT-file"),
        (_saved({"s": scipy.sparse.eye(3).tocsc()}, False), "s is a sparse array, not read here"),
        (_saved({"z": np.array([1 + 2j])}, True), "z is a complex array, not read here"),
        (_saved({"a": np.arange(100.0)}, False)[:300], "truncated"),
    ],
)
def test_what_it_does_not_read_is_refused_in_one_line(data, message):
    with pytest.raises(DataError, match=message):
        read_mat(data, "meta.mat")
