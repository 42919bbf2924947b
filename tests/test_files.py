"""rys.core.files: atomic writes leave the whole file or nothing, with normal permissions."""

import os

import pytest

from rys.core.errors import RysError
from rys.core.files import atomic_folder, atomic_path, read_toml, write_atomic


def test_an_atomic_write_has_the_permissions_of_any_new_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    write_atomic(tmp_path / "atomic", b"data")
    assert (tmp_path / "atomic").read_bytes() == b"data"
    assert os.stat(tmp_path / "atomic").st_mode == os.stat(tmp_path / "plain").st_mode


def test_an_interrupted_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_bad_toml_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [1\n")
    with pytest.raises(RysError, match=r"bad.toml: not valid TOML") as err:
        read_toml(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(RysError, match="cannot read .*missing.toml"):
        read_toml(tmp_path / "missing.toml")


def test_a_folder_replaces_the_old_one_only_when_complete(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"] and (out / "old.txt").is_file()
    with atomic_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
