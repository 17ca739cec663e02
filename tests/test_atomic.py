"""Files published whole or not at all, and a full disk named in one line."""
import pytest

from embedbench.atomic import atomic_write
from embedbench.errors import EmbedbenchError
from tests.helpers import fill_disk, small_disk


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_write(target) as fh:
            fh.write("half of the new")
            raise ValueError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_full_disk_is_named_in_one_line_and_leaves_the_old_file(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        target = disk / "results.json"
        target.write_text("old")
        fill_disk(disk)
        with pytest.raises(EmbedbenchError, match=rf"^{target}: no space left on device; nothing was written$"):
            with atomic_write(target) as fh:
                fh.write("x" * (1 << 16))
        assert target.read_text() == "old" and sorted(p.name for p in disk.iterdir()) == ["filler", "results.json"]
