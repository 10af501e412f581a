"""A run directory: file names, atomic writes, metrics log, checkpoints, summary, lock.

A run directory holds::

    config.json     the config and the cell spec (written when the run starts)
    metrics.jsonl   one JSON record per line: train steps, validations, the test
    last.pt         latest checkpoint: model, optimiser, RNG states, step, config
    best.pt         parameters with the lowest validation loss so far
    summary.json    the outcome (written when the run ends)
    .lock           held (``flock``) by the process writing the run; says who it is

Every file but the metrics log is written atomically (temporary file in the same
directory, fsync, ``os.replace``); the log is appended a line at a time, so a crash cuts
at most its last line short. One process at a time writes a run: :meth:`RunDir.lock`
takes an exclusive ``flock`` on ``.lock``, which the kernel releases when the process ends
however it ends, so a lock left by a killed run is simply taken over. (``flock`` is
advisory and local: it does not guard a directory shared over NFS by several hosts.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compiler.spec import load_spec
from qrnn_tn import jsonio
from qrnn_tn.errors import Error
from qrnn_tn.model import QRNN
from qrnn_tn.training.config import TrainConfig, TrainError, build_model
from qrnn_tn.training.results import TrainSummary

__all__ = [
    "CHECKPOINT_FORMAT",
    "RunDir",
    "RunDirError",
    "atomic_write",
    "load_checkpoint",
    "load_run",
    "read_metrics",
]

#: Version of the checkpoint layout (``last.pt``, ``best.pt``).
CHECKPOINT_FORMAT = 1


class RunDirError(Error, ValueError):
    """A run directory is in use, damaged, or not what the command expects."""


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` via ``write(file)`` into a temporary sibling, fsync, then ``os.replace``.

    A crash or error at any point leaves the previous file (if any) untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RunDir:
    """The files of one run directory (see the module docstring)."""

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"
    LAST = "last.pt"
    BEST = "best.pt"
    SUMMARY = "summary.json"
    LOCK = ".lock"
    #: What a run writes, and what ``qrnn-tn plot`` adds.
    RUN_FILES = (CONFIG, METRICS, LAST, BEST, SUMMARY)
    PLOTS = ("curves.png", "distributions.png", "samples.png")

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            encoded = os.fsencode(self.path)
        except UnicodeEncodeError as err:
            raise RunDirError(
                f"run directory {str(self.path)!r} cannot be a file name here: character "
                f"{err.object[err.start : err.end]!r} has no encoding in the file system's "
                f"{sys.getfilesystemencoding()}; choose another directory name"
            ) from None
        if b"\0" in encoded:
            raise RunDirError(
                f"run directory {str(self.path)!r} holds a NUL character, which no file name "
                "can; choose another directory name"
            )

    def __repr__(self) -> str:
        """Return ``RunDir('<path>')``."""
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """Return the path of file ``name`` of the run."""
        return self.path / name

    def existing(self) -> list[str]:
        """Return the run files (:attr:`RUN_FILES`) present in the directory."""
        return [name for name in self.RUN_FILES if self.file(name).exists()]

    def clear(self) -> None:
        """Delete the run files and plots (to start a new run in the same directory)."""
        for name in (*self.RUN_FILES, *self.PLOTS):
            self.file(name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ lock

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory's write lock for the ``with`` block.

        Raises :class:`RunDirError` naming the holder (pid, host, start time) when another
        live process holds it.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file(self.LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(
                    f"{self.path} is being written by another run ({self._holder(fd)}); wait "
                    "for it to finish, or choose another output directory"
                ) from None
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode())
            return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
        except (ValueError, KeyError, TypeError):
            return "a process that has not yet said who it is"

    # ------------------------------------------------------------------ JSON files

    def write_json(self, name: str, data: Any) -> None:
        """Write strict JSON to file ``name``, atomically."""
        text = jsonio.dumps(data, indent=2, sort_keys=True) + "\n"
        atomic_write(self.file(name), lambda f: f.write(text), mode="w")

    def read_config(self) -> dict[str, Any]:
        """Return the ``config`` table of ``config.json``; damage raises :class:`RunDirError`."""
        path = self.file(self.CONFIG)
        data = jsonio.read_json(path, "run config", RunDirError)
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise RunDirError(
                f"run config {path} is damaged: expected an object with a 'config' table; "
                "restore it from a backup, or start a new run"
            )
        return data["config"]

    def write_summary(self, summary: TrainSummary) -> None:
        """Write ``summary.json``, atomically."""
        self.write_json(self.SUMMARY, summary.to_json())

    def read_summary(self) -> TrainSummary:
        """Return the run's outcome from ``summary.json``; damage raises :class:`RunDirError`."""
        path = self.file(self.SUMMARY)
        data = jsonio.read_json(path, "run summary", RunDirError)
        try:
            return TrainSummary.from_json(data)
        except (KeyError, TypeError, AttributeError) as err:
            raise RunDirError(
                f"run summary {path} is damaged ({type(err).__name__}: {err}); train the run "
                "again, or restore the file"
            ) from err

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str, checkpoint: dict[str, Any]) -> None:
        """Write checkpoint ``name`` (tensors and plain values), atomically."""
        data = {"format": CHECKPOINT_FORMAT, **checkpoint}
        atomic_write(self.file(name), lambda f: torch.save(data, f))

    # ------------------------------------------------------------------ metrics

    def start_metrics(self) -> None:
        """Start an empty metrics log."""
        atomic_write(self.file(self.METRICS), lambda f: None)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record (a line of strict JSON) to the metrics log."""
        with open(self.file(self.METRICS), "a", encoding="utf-8") as f:
            f.write(jsonio.dumps(record) + "\n")

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Replace the metrics log by ``records``, atomically."""
        text = "".join(jsonio.dumps(r) + "\n" for r in records)
        atomic_write(self.file(self.METRICS), lambda f: f.write(text), mode="w")

    def read_metrics(self, strict: bool = False) -> list[dict[str, Any]]:
        """Return the records of the metrics log.

        A last line cut short by a crash (no newline at its end) is skipped. Other lines
        that do not parse are skipped too, unless ``strict`` (for a resume, which must not
        lose history): then they are a :class:`RunDirError` naming the line.
        """
        path = self.file(self.METRICS)
        if not path.is_file():
            raise RunDirError(f"no metrics file at {path}; is this a run directory made by train?")
        text = jsonio.read_text(path, "metrics log", RunDirError)
        lines = text.split("\n")  # the last item is "" when the log ends with a newline
        records = []
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict) and (
                not strict
                or (record.get("split") in ("train", "val", "test") and _is_int(record.get("step")))
            ):
                records.append(record)
            elif strict and number < len(lines):
                raise RunDirError(
                    f"metrics log {path} is damaged at line {number} ({line[:60]!r}); each line "
                    'must be a record like {"split": "train", "step": 1, ...}. Repair or '
                    "delete that line to resume"
                )
        return records


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return a checkpoint written by a run (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise TrainError(f"checkpoint {path} cannot be read ({err}); it is damaged") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path} is not a qrnn-tn checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def load_run(run_dir: str | os.PathLike[str], which: str = "best") -> tuple[QRNN, TrainConfig]:
    """Return the model of a run directory (``which``: ``"best"`` or ``"last"``) and its config."""
    if which not in ("best", "last"):
        raise TrainError(f"which={which!r}; accepted: best, last")
    ckpt = load_checkpoint(RunDir(run_dir).file(RunDir.BEST if which == "best" else RunDir.LAST))
    config = TrainConfig.from_dict(ckpt["config"])
    spec = load_spec(ckpt["spec"])
    model = build_model(spec, config, init=np.zeros(spec.n_parameters()))
    model.load_state_dict(ckpt["model"])
    return model, config


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Return the records of a run's ``metrics.jsonl`` (``path``: the file or its directory).

    A line cut short by a crash is skipped.
    """
    path = Path(path)
    return RunDir(path if path.is_dir() else path.parent).read_metrics()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
