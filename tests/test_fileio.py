"""seglab.fileio: atomic writes with the umask's permissions, clear file-system errors, no temp left behind,
stale temps of killed writers cleaned, outputs never over inputs.

Tests run as root, whom permission bits do not stop: full disks are real (a temp file that is a symlink to
``/dev/full``, where every write fails with ENOSPC in the kernel), read-only and permission failures are
raised by a patched ``os.replace`` / ``tempfile.mkstemp`` with the errno the kernel would give.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seglab import fileio
from seglab.errors import SeglabError
from seglab.fileio import (
    OutputError,
    atomic_path,
    atomic_write_text,
    check_output_path,
    clean_stale_temps,
    refuse_overwrite,
)

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


def _to_dev_full(tmp: Path) -> None:
    """Make the temp file a symlink to /dev/full: every write to it fails with ENOSPC, as on a full disk."""
    tmp.unlink()
    tmp.symlink_to("/dev/full")


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_umask_permissions(tmp_path, umask, mask, mode) -> None:
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "b.npy") as tmp:
        np.save(tmp, np.zeros(3))
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b.npy").stat().st_mode & 0o777 == mode
    assert fileio.file_mode() == mode


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@needs_dev_full
def test_torch_save_on_a_full_disk_names_the_cause_and_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "last.pt"
    torch.save({"epoch": 1}, target)
    before = target.read_bytes()
    with pytest.raises(OutputError, match=rf"cannot write {target}: no space left on device") as e:
        with atomic_path(target) as tmp:
            _to_dev_full(tmp)
            torch.save({"epoch": 2, "w": torch.zeros(1000)}, tmp)  # torch says "unexpected pos", no errno
    assert isinstance(e.value, SeglabError) and ".tmp" not in str(e.value)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


@needs_dev_full
def test_a_plain_write_on_a_full_disk(tmp_path) -> None:
    with pytest.raises(OutputError, match="no space left on device"), atomic_path(tmp_path / "a.txt") as tmp:
        _to_dev_full(tmp)
        tmp.write_text("x" * 100_000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied"),
                                         (errno.ENOSPC, "no space left on device"),
                                         (errno.EDQUOT, "disk quota exceeded")])
def test_a_refused_rename_is_one_clear_error_and_leaves_no_temp(tmp_path, monkeypatch, code, cause) -> None:
    def refuse(src, dst):
        raise OSError(code, os.strerror(code), str(src))

    monkeypatch.setattr(fileio.os, "replace", refuse)
    with pytest.raises(OutputError) as e:
        atomic_write_text(tmp_path / "m.json", "{}")
    assert str(e.value).startswith(f"cannot write {tmp_path / 'm.json'}: {cause}.")
    assert ".tmp" not in str(e.value)  # the user's path, not the temp's
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_refuses_new_files(tmp_path, monkeypatch) -> None:
    def refuse(prefix="", suffix="", dir=None):  # what os.open says inside mkstemp in a folder like that
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, f"{prefix}k2x_9abq{suffix}"))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path / 'a.txt'}: permission denied"):
        atomic_write_text(tmp_path / "a.txt", "x")


def test_a_folder_in_the_way_and_a_file_as_parent(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("k")
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path / 'd'}: is a directory"):
        atomic_write_text(tmp_path / "d", "x")
    assert (tmp_path / "d" / "keep").read_text() == "k"
    (tmp_path / "f").write_text("f")
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path / 'f' / 'x.txt'}: {tmp_path / 'f'}: .*not"):
        atomic_write_text(tmp_path / "f" / "x.txt", "x")
    assert (tmp_path / "f").read_text() == "f"
    assert _leftovers(tmp_path) == _leftovers(tmp_path / "d") == []


def test_errors_that_are_not_about_the_written_file_pass_through(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="shape mismatch"), atomic_path(tmp_path / "a.pt") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("shape mismatch")
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text((tmp_path / "missing.txt").read_text())  # reading an input, not writing the output
    assert list(tmp_path.iterdir()) == []


def test_describe_os_error_reads_like_the_write_errors(tmp_path) -> None:
    e = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    assert fileio.describe_os_error(e) == f"{tmp_path / 'x'}: permission denied"
    e = NotADirectoryError(errno.ENOTDIR, "Not a directory", str(tmp_path / "f"))
    assert fileio.describe_os_error(e, tmp_path / "f" / "x.png") == \
        f"{tmp_path / 'f' / 'x.png'}: {tmp_path / 'f'}: not a directory (a part of the path is a file)"


# --- stale temps ----------------------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_writer_leaves_a_temp_that_clean_stale_temps_removes(tmp_path) -> None:
    code = ("import os, sys\nfrom seglab.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half a checkpoint')\n    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "last.pt")], check=False)
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".last.pt.") and left[0].endswith(".tmp.pt")
    assert clean_stale_temps(tmp_path) == [tmp_path / left[0]]
    assert list(tmp_path.iterdir()) == []


def test_clean_stale_temps_keeps_live_writers_and_other_files(tmp_path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    names = {
        f".last.pt.{dead}.ab_c9xyz.tmp.pt": False,   # killed writer: removed
        f".best.pt.{alive}.ab_c9xyz.tmp.pt": True,   # a live process's write in progress
        f".best.pt.{os.getpid()}.ab_c9xyz.tmp.pt": True,
        f".last.pt.{dead}.ab_c9xyz.tmp.png": True,   # suffix does not match the name: not ours
        ".metrics.csv.abcdefgh.tmp.csv": True,     # pid-less (older seglab) but recent
        ".old.pt.abcdefgh.tmp.pt": False,          # pid-less and two hours old
        "last.pt": True, ".hidden": True, "x.tmp.pt": True, f".notes.{dead}.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / ".old.pt.abcdefgh.tmp.pt", (two_hours_ago, two_hours_ago))
    removed = clean_stale_temps(tmp_path)
    assert removed == sorted(tmp_path / n for n, keep in names.items() if not keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, keep in names.items() if keep)
    assert clean_stale_temps(tmp_path / "missing") == []


def test_temp_names_carry_the_pid(tmp_path) -> None:
    with atomic_path(tmp_path / "a.pt") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f".a.pt.{os.getpid()}.")
        assert tmp.name.endswith(".tmp.pt")
        tmp.write_text("x")


# --- outputs vs inputs ----------------------------------------------------------------------------------

@pytest.fixture
def imgs(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(name.encode())
    return folder


def test_refuse_overwrite_compares_resolved_paths(imgs) -> None:
    (imgs.parent / "link").symlink_to(imgs, target_is_directory=True)
    inputs = [Path("imgs/a.png"), Path("imgs/b.png")]
    for out in ("./imgs/b.png", "imgs/../imgs/a.png", str(imgs / "a.png"), "link/a.png"):
        with pytest.raises(OutputError, match=r"would overwrite the input imgs/[ab]\.png.*another --out"):
            refuse_overwrite([Path("elsewhere/x.png"), Path(out)], inputs)
    refuse_overwrite(["imgs/c.png", "out/a.png"], inputs)  # new files, or another folder: fine


def test_refuse_overwrite_folders_protect_their_files(imgs) -> None:
    with pytest.raises(OutputError, match=r"--json: writing imgs/b.png would overwrite the input imgs/b.png"):
        refuse_overwrite(["imgs/b.png"], ["imgs"], flag="--json")
    refuse_overwrite(["imgs/new.json"], ["imgs", ""])  # "" is not the current folder


def test_refuse_overwrite_allows_hard_links_it_cannot_harm(imgs) -> None:
    os.link(imgs / "a.png", imgs.parent / "linked.png")
    refuse_overwrite(["linked.png"], ["imgs/a.png"])  # atomic_path renames over the link; the input stays
    atomic_write_text("linked.png", "new")
    assert (imgs / "a.png").read_bytes() == b"a.png"


def test_check_output_path(tmp_path, monkeypatch) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("f")
    with pytest.raises(OutputError, match="--json .*: is a directory"):
        check_output_path(tmp_path / "d", flag="--json")
    with pytest.raises(OutputError, match="exists and is a file, not a folder"):
        check_output_path(tmp_path / "f", directory=True)
    with pytest.raises(OutputError, match=f"{tmp_path / 'f'} is a file, not a folder"):
        check_output_path(tmp_path / "f" / "x" / "y.json")
    assert check_output_path(tmp_path / "new" / "deeper", directory=True) == tmp_path / "new" / "deeper"

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(fileio.os, "statvfs", lambda path: ReadOnly())
    with pytest.raises(OutputError, match="read-only file system"):
        check_output_path(tmp_path / "new.json")
    monkeypatch.undo()
    monkeypatch.setattr(fileio.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match=f"permission denied .*{tmp_path / 'd'}"):
        check_output_path(tmp_path / "d" / "m.json")


def test_mkstemp_files_are_the_only_temps(tmp_path) -> None:
    """clean_stale_temps' pattern matches what tempfile really makes (8 chars of its alphabet)."""
    fd, name = tempfile.mkstemp(prefix=f".a.pt.{_dead_pid()}.", suffix=".tmp.pt", dir=tmp_path)
    os.close(fd)
    assert clean_stale_temps(tmp_path) == [Path(name)]
