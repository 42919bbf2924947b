import pytest

from rys.surgery import spec as specs
from rys.core.errors import RysError


@pytest.mark.parametrize("spec,n,expected", [
    ("2-4", 8, [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7]),
    ("27-30", 32, list(range(31)) + [27, 28, 29, 30, 31]),
    ("7-7", 8, [0, 1, 2, 3, 4, 5, 6, 7, 7]),
    ("3", 8, [0, 1, 2, 3, 3, 4, 5, 6, 7]),
    ("0-7", 8, list(range(8)) * 2),
    # the brief's multi-block example: each block names original layers
    ("1-2,5-6", 8, [0, 1, 2, 1, 2, 3, 4, 5, 6, 5, 6, 7]),
    # a later block that ends inside an earlier copy goes after the last occurrence
    ("1-3,2-3", 8, [0, 1, 2, 3, 1, 2, 3, 2, 3, 4, 5, 6, 7]),
    ("path:0-3,2-7", 8, [0, 1, 2, 3, 2, 3, 4, 5, 6, 7]),
    ("path:0-2,5-7", 8, [0, 1, 2, 5, 6, 7]),
    ("path:3-0", 4, [3, 2, 1, 0]),
    ("path: 0 - 1 ,3", 4, None),  # spaces inside a range are malformed
])
def test_resolve(spec, n, expected):
    if expected is None:
        with pytest.raises(RysError):
            specs.layer_path(specs.parse(spec), n)
        return
    assert specs.layer_path(specs.parse(spec), n) == expected


@pytest.mark.parametrize("spec,message", [
    ("", "malformed"),
    ("4-2", "runs backwards"),
    ("a-b", "malformed range"),
    ("1-2,", "malformed"),
    ("1--2", "malformed range"),
    ("-1-2", "malformed range"),
    ("path:", "malformed"),
])
def test_parse_errors(spec, message):
    with pytest.raises(RysError, match=message):
        specs.parse(spec)


def test_out_of_range():
    with pytest.raises(RysError, match="out of range: the model has layers 0-7"):
        specs.layer_path(specs.parse("6-8"), 8)
    with pytest.raises(RysError, match="out of range"):
        specs.layer_path(specs.parse("path:0-8"), 8)


@pytest.mark.parametrize("spec,label", [
    ("27-30", "rys_27-30"),
    ("1-2,5-6", "rys_1-2_5-6"),
    ("3", "rys_3"),
    ("path:0-30,27-30,31", "rys_path_0-30_27-30_31"),
])
def test_label(spec, label):
    assert specs.parse(spec).label == label


def test_describe_round_trip():
    path = specs.layer_path(specs.parse("1-2,5-6"), 8)
    assert specs.describe(path) == "0-2,1-6,5-7"
    assert specs.layer_path(specs.parse("path:" + specs.describe(path)), 8) == path
