"""Safe file writes: atomic, with the umask's permissions, never over an input, with clear errors.

Every file seglab writes goes through :func:`atomic_path`: a file either has its old content or its
complete new content, never half. A write the file system refuses (full disk, read-only, permission
denied, a folder in the way) raises :class:`OutputError` naming the path and the cause, and leaves no
temporary file behind. Commands call :func:`refuse_overwrite` with the outputs they plan and the inputs
they read before they write anything, and :func:`check_output_path` before long work.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from seglab.errors import OutputError

__all__ = ["OutputError", "atomic_path", "atomic_write_text", "check_output_path", "clean_stale_temps",
           "describe_os_error", "file_mode", "process_alive", "refuse_overwrite"]

PathLike = str | os.PathLike
# The temp name atomic_path gives: ".<name>.<pid>.<8 random chars>.tmp<suffix>" (pid: see clean_stale_temps).
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(?P<suffix>.*)$")
# Before the pid was part of the name (seglab 0.x): ".<name>.<8 random chars>.tmp<suffix>".
_OLD_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>.*)$")
_PROBE_BYTES = 1 << 16
# What each errno means to a user, and what to do when a write meets it; others show os.strerror's words.
_CAUSES = {
    errno.ENOSPC: ("no space left on device", "Free some space on that disk or write somewhere else."),
    errno.EDQUOT: ("disk quota exceeded", "Free some space or write somewhere else."),
    errno.EROFS: ("read-only file system", "Write to a writable location instead."),
    errno.EACCES: ("permission denied", "Write to a folder you may write to, or fix its permissions."),
    errno.EPERM: ("operation not permitted", "Write to a folder you may write to, or fix its permissions."),
    errno.EISDIR: ("is a directory", "Name a file, not a folder."),
    errno.ENOTDIR: ("not a directory (a part of the path is a file)", "Choose a path whose folders are folders."),
    errno.EEXIST: ("is a file, not a folder", "Choose a path whose folders are folders."),
    errno.ENAMETOOLONG: ("file name too long", "Choose a shorter name."),
    errno.EFBIG: ("file too large for this file system", "Write to another file system."),
    errno.EIO: ("input/output error", "Check the disk, then write again or elsewhere."),
}


def describe_os_error(error: OSError, path: PathLike | None = None) -> str:
    """``"<path>: <cause>"`` for an ``OSError``, in words (``path`` defaults to the error's own filename).

    When ``path`` is given and the error names another file (a parent folder, not the temp file), that
    file is named too: ``"out/x.png: out: is a file, not a folder"``.
    """
    cause = _CAUSES.get(error.errno or -1, (None, ""))[0]
    cause = cause or (os.strerror(error.errno) if error.errno else (error.strerror or str(error))).lower()
    where = Path(path if path is not None else (error.filename or "?"))
    if error.filename is not None and path is not None and not _is_temp_of(error.filename, where):
        culprit = Path(os.fsdecode(error.filename))
        if culprit != where:
            cause = f"{culprit}: {cause}"
    return f"{where}: {cause}"


def _is_temp_of(filename: PathLike, path: Path) -> bool:
    match = _TEMP.match(Path(os.fsdecode(filename)).name)
    return bool(match) and match["name"] == path.name


def _error(path: Path, error: OSError) -> OutputError:
    fix = _CAUSES.get(error.errno or -1, ("", "Check the path and the disk, then write again or elsewhere."))[1]
    return OutputError(f"cannot write {describe_os_error(error, path)}. {fix}")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and restore at once; the lock keeps our own threads from racing
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The permissions a new file gets under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` with ``os.replace``.

    Writing to the same directory keeps the final rename atomic on POSIX filesystems, so a run
    killed mid-write leaves the previous file intact. The file gets the umask's permissions. A write the
    file system refuses (an ``OSError``, or torch's ``RuntimeError`` of a failed ``torch.save``) becomes
    :class:`OutputError` naming ``path`` and the cause; the temporary file is removed either way.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{path.suffix}",
                                   dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _error(path, e) from e
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            os.chmod(tmp_path, file_mode())
            os.replace(tmp_path, path)
        except OSError as e:
            if e.filename is not None and not _concerns(e.filename, path, tmp_path):
                raise  # about another file (one the body read, say), not this write
            raise _error(path, e) from e
        except RuntimeError as e:  # torch.save reports a failed write as "[enforce fail ...] unexpected pos"
            cause = _write_failure(tmp_path, e)
            if cause is None:
                raise
            raise _error(path, cause) from e
    finally:
        with contextlib.suppress(OSError):
            if os.path.lexists(tmp_path):
                tmp_path.unlink()


def _concerns(filename: PathLike, path: Path, tmp: Path) -> bool:
    """Whether an error's filename is the output, its temp file or one of its folders."""
    named = Path(os.path.abspath(os.fsdecode(filename)))
    target = Path(os.path.abspath(path))
    return named in (target, Path(os.path.abspath(tmp))) or named in target.parents


def _write_failure(tmp: Path, error: RuntimeError) -> OSError | None:
    """The file-system cause of a ``RuntimeError`` raised while writing ``tmp``, or ``None`` if it has none.

    Torch's writer drops the errno, so the cause is found again: a probe write to the same file shows
    the file system's own error (full, read-only, quota), and an almost empty disk means no space.
    """
    try:
        with open(tmp, "ab") as fh:
            fh.write(b"\0" * _PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as probe:
        return probe
    text = str(error)
    if not any(mark in text for mark in ("inline_container", "PytorchStreamWriter", "file write failed")):
        return None  # not a write failure: an error of the code that was writing
    with contextlib.suppress(OSError):
        if shutil.disk_usage(tmp.parent).free < 2 * _PROBE_BYTES:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    return OSError(f"write failed ({text.strip().splitlines()[0][:200]})")


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def clean_stale_temps(directory: PathLike) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_path` writes left in ``directory``.

    Only names atomic_path makes are touched (``.<name>.<pid>.<random>.tmp<suffix>``), and only those whose
    process no longer runs on this machine; an older pid-less temp (``.<name>.<random>.tmp<suffix>``) is
    removed once it is an hour old. Returns the removed paths (none if ``directory`` does not exist).
    """
    import time

    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        if _is_stale(entry, time.time()):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return sorted(removed)


def _is_stale(entry: Path, now: float) -> bool:
    if not entry.name.startswith(".") or ".tmp" not in entry.name or entry.is_dir():
        return False
    match = _TEMP.match(entry.name)
    if match and Path(match["name"]).suffix == match["suffix"]:
        return not process_alive(int(match["pid"]))
    match = _OLD_TEMP.match(entry.name)
    if match and Path(match["name"]).suffix == match["suffix"]:
        with contextlib.suppress(OSError):
            return now - entry.lstat().st_mtime > 3600
    return False


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (this process counts; a pid no process can have does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):  # a number no process can have
        return False
    return pid > 0


def check_output_path(path: PathLike, *, directory: bool = False, flag: str = "--out") -> Path:
    """Refuse, before any work, an output the file system will not take; returns ``path``.

    A file output must not be an existing folder, a folder output not an existing file; a path under a
    file, a read-only file system and a folder without write permission are refused too.

    Raises:
        OutputError: naming ``flag``, the path and the cause.
    """
    path = Path(path)
    if path.is_dir() and not directory:
        raise OutputError(f"{flag} {path}: is a directory, not a file. Name a file (it may be inside that "
                          "folder).")
    if path.exists() and not path.is_dir() and directory:
        raise OutputError(f"{flag} {path}: exists and is a file, not a folder. Pass a folder path.")
    existing = path if path.exists() else next((p for p in path.parents if os.path.lexists(p)), Path("."))
    if not existing.is_dir() and existing != path:
        raise OutputError(f"{flag} {path}: {existing} is a file, not a folder. Choose a path whose folders "
                          "are folders.")
    folder = existing if existing.is_dir() else existing.parent
    with contextlib.suppress(OSError, AttributeError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise OutputError(f"{flag} {path}: {folder} is on a read-only file system. Write to a "
                              "writable location instead.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: permission denied (cannot create files in {folder}). Write to a "
                          "folder you may write to, or fix its permissions.")
    return path


def refuse_overwrite(outputs: Iterable[PathLike], inputs: Iterable[PathLike], *, flag: str = "--out") -> None:
    """Refuse outputs that would replace an input: seglab never modifies the files it reads.

    ``outputs`` are the files a command plans to write; ``inputs`` the files it reads, where a folder
    stands for every existing file below it. Paths are compared resolved (``./a`` and ``a``, symlinks),
    and by identity for other names of one file (bind mounts, case-insensitive file systems).

    Raises:
        OutputError: naming the first input that would be overwritten and suggesting another ``flag``.
    """
    files: dict[str, Path] = {}
    folders: list[tuple[str, Path]] = []
    inodes: dict[tuple[int, int], Path] = {}
    for item in map(Path, filter(os.fspath, inputs)):  # "" is no input (not the current folder)
        real = os.path.realpath(item)
        if os.path.isdir(real):
            folders.append((real.rstrip(os.sep) + os.sep, item))
            continue
        files[real] = item
        with contextlib.suppress(OSError):
            st = os.stat(real)
            inodes[(st.st_dev, st.st_ino)] = item
    for out in map(Path, outputs):
        hit = _overwritten(out, files, folders, inodes)
        if hit is not None:
            raise OutputError(f"{flag}: writing {out} would overwrite the input {hit}; seglab never modifies "
                              f"its inputs. Pass another {flag}.")


def _overwritten(out: Path, files: dict[str, Path], folders: list[tuple[str, Path]],
                 inodes: dict[tuple[int, int], Path]) -> Path | None:
    real = os.path.realpath(out)
    if real in files:
        return files[real]
    try:
        st = os.stat(real)
    except OSError:
        return None  # nothing there yet: nothing is overwritten
    if os.path.isdir(real):
        return None
    # Another name of one file (not a hard link: atomic_path's rename leaves a linked input as it was).
    if st.st_nlink == 1 and (st.st_dev, st.st_ino) in inodes:
        return inodes[(st.st_dev, st.st_ino)]
    for prefix, folder in folders:
        if real.startswith(prefix):
            return Path(folder) / os.path.relpath(real, prefix.rstrip(os.sep) or os.sep)
    return None
