"""A run directory belongs to one run: a lock while it trains, a fresh name for a new run, strict resumes.

- :class:`RunLock`: ``<out>/.lock`` holds the pid and host of the process training there. A second
  ``seglab train`` into the same folder is refused while that process lives; a lock left by a dead process
  (SIGKILL, power loss) is taken over with a message.
- :func:`fresh_run_dir`: a new run never writes into a folder that already holds a run; it gets the next
  free name (``runs/exp`` -> ``runs/exp2``), as Ultralytics does.
- :func:`resume_changes`: ``--resume`` continues the same run. Only the keys in :data:`RESUMABLE` may differ
  from the run's saved config; any other difference is refused, naming the keys with old and new values.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from seglab.checkpoint import read_checkpoint
from seglab.errors import SeglabError
from seglab.fileio import check_output_path, clean_stale_temps, process_alive

LOCK_NAME = ".lock"
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.csv")
# Keys a resume may change: how long to train and how to run, never what is trained or how it is optimised.
RESUMABLE = ("train.epochs", "train.out", "train.resume", "train.device", "train.tb", "train.num_samples",
             "train.save_every", "train.eval_every", "train.early_stop", "train.time", "data.workers")


class RunDirError(SeglabError):
    """The run directory is in use, or a resume does not match the run it continues."""


class RunLock:
    """``<out>/.lock`` for the lifetime of a run (a context manager; rank 0 only)."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.path = Path(out) / LOCK_NAME
        self.note: str | None = None  # set when a stale lock was taken over
        self.held_already = False  # this process held it before (train() locks, then Trainer.fit): re-entrant
        self.created = False

    def __enter__(self) -> RunLock:
        self.created = not self.path.parent.exists()  # a run that fails before writing leaves no empty folder
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._owner().get("pid") == os.getpid():
            self.held_already = True
            return self
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return self
        raise RunDirError(f"{self.path}: could not take the run directory's lock; another run keeps taking it.")

    def _owner(self) -> dict[str, Any]:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return owner if isinstance(owner, dict) else {}

    def _take_over_if_stale(self) -> None:
        owner = self._owner()
        if not owner:  # being written right now (created, not yet filled) unless it is old
            try:
                if time.time() - self.path.stat().st_mtime < 10:
                    raise RunDirError(f"{self.path.parent} is being claimed by another seglab run right now. "
                                      "Train into another --out.")
            except FileNotFoundError:
                return
        pid, host = owner.get("pid"), owner.get("host")
        if isinstance(pid, int) and pid != os.getpid() and (host not in (None, socket.gethostname())
                                                            or process_alive(pid)):
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("started", 0)))
            raise RunDirError(f"{self.path.parent} is in use by another seglab run (pid {pid} on {host}, since "
                              f"{since}). Wait for it to finish, stop it, or train into another --out.")
        self.note = f"took over the lock of a run that is no longer running (pid {pid}) in {self.path.parent}"
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __exit__(self, *exc: object) -> None:
        if not self.held_already and self._owner().get("pid") == os.getpid():
            try:
                self.path.unlink()
                if self.created and not any(self.path.parent.iterdir()):
                    self.path.parent.rmdir()
            except OSError:
                pass


@contextlib.contextmanager
def own_run_dir(out: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold ``out`` for one run: a writable folder, locked, without temp files of killed saves."""
    check_output_path(out, directory=True)
    with RunLock(out) as lock:
        stale = clean_stale_temps(out)
        if lock.note:
            log(lock.note)
        if stale:
            log(f"removed {len(stale)} temporary file(s) left by an interrupted save in {out}")
        yield


def holds_run(path: Path) -> bool:
    """Whether ``path`` already holds (part of) a training run, or one starting now (its lock)."""
    return any((path / name).exists() for name in (*RUN_FILES, LOCK_NAME))


def fresh_run_dir(out: str | os.PathLike) -> Path:
    """``out`` when it holds no run yet, else the first free ``<out>2``, ``<out>3``, ..."""
    out = Path(out) if Path(out).name else Path(out).absolute()  # "." has no name to number
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out}: is a file, not a folder. Pass a folder for the run.")
    if not holds_run(out):
        return out
    n = 2
    while holds_run(out.with_name(f"{out.name}{n}")) or out.with_name(f"{out.name}{n}").is_file():
        n += 1
    return out.with_name(f"{out.name}{n}")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "options":
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def resume_changes(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every key that differs and may not change on a resume."""
    old, cur = _flatten(saved), _flatten(new)
    return [(k, old.get(k), cur.get(k)) for k in sorted(set(old) | set(cur))
            if k not in RESUMABLE and old.get(k) != cur.get(k)]


def check_resume(path: Path, saved: Any, new: dict[str, Any]) -> None:
    """Refuse a resume whose config differs from the run's saved one outside :data:`RESUMABLE`."""
    if not isinstance(saved, dict):
        raise RunDirError(f"{path}: holds no run config, so a resume cannot be checked against it. Start a new "
                          "run (without --resume).")
    changes = resume_changes(saved, new)
    if changes:
        lines = "\n".join(f"  {k}: {old!r} in the run, {cur!r} now" for k, old, cur in changes)
        raise RunDirError(f"--resume continues the run in {path.parent} as it was configured; these settings "
                          f"differ:\n{lines}\nDrop those flags (the run's config.yaml is used), or start a new run "
                          f"without --resume. A resume may change only: {', '.join(RESUMABLE)}.")



def read_resume_checkpoint(path: Path, config: dict[str, Any], model_spec: dict[str, Any]) -> dict[str, Any]:
    """``last.pt`` of the run being resumed, checked: full resume state, same config (see
    :data:`RESUMABLE`) and the same model."""
    if not path.is_file():
        raise RunDirError(f"{path}: nothing to resume (no last.pt in {path.parent}). Start without --resume.")
    ck = read_checkpoint(path)
    missing = [k for k in ("optimizer", "scheduler", "scaler", "trainer", "rng") if not isinstance(ck.get(k), dict)]
    if missing:
        raise RunDirError(f"{path}: has no {', '.join(missing)} state, so the run cannot continue exactly (it is a "
                          "weights-only file such as best.pt, or was edited). Start a new run instead.")
    check_resume(path, ck.get("config"), config)
    if ck.get("model") != model_spec:
        raise RunDirError(f"{path}: checkpoint is for model {ck.get('model')}, this run builds {model_spec}. Use "
                          "the same --model and options, or another --out.")
    return ck
