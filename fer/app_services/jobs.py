"""In-browser training: one background training job per server, with progress and cancel.

A job runs :func:`fer.training.train` in a worker process (:mod:`fer.app_services.train_worker`, see there why
not a thread) watched by a daemon thread of the server, so it survives reruns, page switches and
closed tabs; any session can watch it through :meth:`TrainingJob.snapshot`. No Streamlit here.
"""

from __future__ import annotations

import atexit
import copy
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fer.data import Dataset, Split

log = logging.getLogger(__name__)
_ids = itertools.count(1)

RUNNING = ("queued", "loading", "training", "evaluating")


class JobBusy(RuntimeError):
    """A training is already running on this server."""


@dataclass
class TrainRequest:
    data_path: Path
    data_label: str
    config: object  # fer.training.TrainConfig
    quick_n: int | None = None
    init_model: Path | None = None
    skip_unknown: bool = True
    use_cache: bool = True  # the on-disk dataset cache; off for one-off uploads
    cleanup: Path | None = None  # an upload folder to delete once the data is in memory


def stage_upload(kind: str, data: bytes, work_dir: Path, *, max_bytes: int, max_files: int) -> tuple[Path, Path]:
    """Write an uploaded ``fer2013.csv`` or extract an uploaded zip into a fresh folder under ``work_dir``.

    Returns ``(dataset_path, folder)``; the caller deletes ``folder`` when done. Zips are extracted
    with :func:`fer.app_services.archive.safe_extract` (zip-slip and zip-bomb guards).
    """
    from fer.app_services.archive import dataset_root, safe_extract

    uploads = work_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=uploads))
    try:
        if kind == "csv":
            path = folder / "fer2013.csv"
            path.write_bytes(data)
            return path, folder
        if kind == "zip":
            safe_extract(data, folder / "data", max_bytes=max_bytes, max_files=max_files)
            return dataset_root(folder / "data"), folder
        raise ValueError(f"unknown upload kind {kind!r}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def subset(data: Dataset, n_train: int, seed: int = 0) -> Dataset:
    """A quick-run dataset: ``n_train`` random training images and a validation set a fifth that size.

    The validation images come from ``public_test`` when the data has it (else training carves its
    own); ``private_test`` is dropped.
    """
    if n_train < 14:
        raise ValueError("a quick run needs at least 14 training images (2 per class)")
    rng = np.random.default_rng(seed)
    train = data.splits.get("train") or data.split("all")

    def pick(split: Split, k: int) -> Split:
        idx = np.sort(rng.choice(len(split), k, replace=False))
        return Split(split.x[idx], split.y[idx])

    splits = {"train": pick(train, min(n_train, len(train)))}
    if "public_test" in data.splits and "train" in data.splits:
        val = data.splits["public_test"]
        splits["public_test"] = pick(val, min(len(val), max(n_train // 5, 50)))
    total = len(train)
    return Dataset(f"{data.source} (quick run: {len(splits['train'])} of {total} training images)",
                   data.form, splits, data.skipped, {**data.meta, "quick_run": len(splits["train"])})


@dataclass
class TrainingJob:
    request: TrainRequest
    out_path: Path
    id: int = field(default_factory=lambda: next(_ids))
    state: str = "queued"  # queued | loading | training | evaluating | done | cancelled | failed
    message: str = ""
    started: float = field(default_factory=time.time)
    train_started: float | None = None
    finished: float | None = None
    epochs: int = 0
    initial_epoch: int = 0
    epoch: int = 0  # finished epochs
    step: int = 0
    steps: int = 0
    last_logs: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    data_summary: dict = field(default_factory=dict)
    result_path: Path | None = None
    card: object = None  # fer.modelfile.ModelCard of the exported best epoch
    saved_path: Path | None = None
    error: str | None = None
    returncode: int | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    # ------------------------------------------------------------ progress (from the worker's messages)

    def on_train_begin(self, epochs: int, steps: int, initial_epoch: int) -> None:
        with self._lock:
            self.state, self.epochs, self.steps = "training", epochs, steps
            self.initial_epoch = self.epoch = initial_epoch
            self.train_started = time.time()
            self.message = "compiling the training step (the first batch takes a while)"

    def on_batch(self, epoch: int, step: int, steps: int, logs: dict) -> None:
        with self._lock:
            self.epoch, self.step, self.steps = epoch, step, steps
            if not self.cancel_event.is_set():
                self.message = f"epoch {epoch + 1}/{self.epochs}, batch {step}/{steps}"
            self.last_logs = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, np.number))}

    def on_epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        with self._lock:
            self.epoch, self.step = epoch, 0
            self.history.append(dict(logs))
            if epoch >= epochs:
                self.state, self.message = "evaluating", "evaluating the best epoch"
            elif not self.cancel_event.is_set():
                self.message = f"epoch {epoch}/{epochs} done; starting epoch {epoch + 1}"

    # ------------------------------------------------------------ control and views

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    def cancel(self) -> None:
        self.cancel_event.set()
        with self._lock:
            if self.running:
                self.message = "cancelling: stopping after the current batch"
            proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.write("cancel\n")
                proc.stdin.flush()
            except (OSError, ValueError):  # already gone
                pass

    def progress(self) -> float:
        """Fraction of the batches done (0-1)."""
        total = max(1, (self.epochs - self.initial_epoch) * self.steps)
        done = (self.epoch - self.initial_epoch) * self.steps + self.step
        return min(1.0, max(0.0, done / total)) if self.steps else 0.0

    def snapshot(self) -> dict:
        """A consistent copy of the job's state for display."""
        with self._lock:
            now = time.time()
            frac = self.progress()
            end = self.finished or now
            elapsed = end - self.started
            train_elapsed = end - self.train_started if self.train_started else 0.0
            remaining = train_elapsed * (1 - frac) / frac if self.running and frac > 0.01 else None
            return {
                "id": self.id, "state": self.state, "message": self.message, "running": self.running,
                "cancel_requested": self.cancel_event.is_set(), "epoch": self.epoch, "epochs": self.epochs,
                "step": self.step, "steps": self.steps, "progress": frac, "elapsed_s": elapsed,
                "remaining_s": remaining, "history": copy.deepcopy(self.history), "logs": dict(self.last_logs),
                "data": dict(self.data_summary), "data_label": self.request.data_label,
                "config": vars(self.request.config).copy(), "quick_n": self.request.quick_n,
                "init_model": str(self.request.init_model) if self.request.init_model else None,
                "result_path": self.result_path, "card": self.card, "saved_path": self.saved_path,
                "error": self.error,
            }

    def mark_saved(self, path: Path) -> None:
        with self._lock:
            self.saved_path = path

    # ------------------------------------------------------------ worker

    def _set(self, **kwargs) -> None:
        with self._lock:
            for k, v in kwargs.items():
                setattr(self, k, v)

    def request_json(self) -> dict:
        req = self.request
        return {
            "data_path": str(req.data_path), "config": asdict(req.config), "quick_n": req.quick_n,
            "init_model": str(req.init_model) if req.init_model else None, "skip_unknown": req.skip_unknown,
            "use_cache": req.use_cache, "out_path": str(self.out_path),
        }

    def log_path(self) -> Path:
        return self.out_path.with_suffix(".log")

    def run(self) -> None:
        """Start the worker process and follow its progress lines (runs in the job's thread)."""
        from fer.modelfile import read_card

        request_file = self.out_path.with_suffix(".request.json")
        request_file.write_text(json.dumps(self.request_json()))
        repo = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p),
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        final: dict = {}
        try:
            self._set(state="loading", message=f"loading {self.request.data_label}")
            with open(self.log_path(), "wb") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "fer.app_services.train_worker", str(request_file)], cwd=repo, env=env,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True, bufsize=1)
                self._set(_proc=proc)
                if self.cancel_event.is_set():
                    self.cancel()
                for line in proc.stdout:
                    try:
                        msg = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    final = self._handle(msg) or final
                proc.wait()
            self._set(returncode=proc.returncode)
            if final.get("event") == "done":
                card = read_card(final["model_path"])
                message = (f"stopped after epoch {card.epochs}; kept the best epoch {card.best_epoch}"
                           if final["cancelled"] else f"best epoch {card.best_epoch}/{card.epochs}")
                self._set(state="cancelled" if final["cancelled"] else "done", message=message,
                          result_path=Path(final["model_path"]), card=card)
            elif final.get("event") == "error":
                kind = final.get("kind", "failed")
                self._set(state=kind, message=final["message"] if kind == "cancelled" else "failed",
                          error=None if kind == "cancelled" else final["message"])
            else:
                self._set(state="failed", message="failed",
                          error=f"the training process ended unexpectedly (exit code {proc.returncode}): "
                                f"{_tail(self.log_path())}")
        except Exception as exc:  # noqa: BLE001 - the page must show the failure, not hang
            log.exception("training job %s failed", self.id)
            self._set(state="failed", error=f"{type(exc).__name__}: {exc}", message="failed")
        finally:
            self._remove_upload()
            request_file.unlink(missing_ok=True)
            self._set(finished=time.time(), _proc=None)

    def _handle(self, msg: dict) -> dict | None:
        event = msg.get("event")
        if event == "loaded":
            self._remove_upload()
            n = sum(s["n"] for s in msg["data"]["splits"].values())
            self._set(data_summary={**msg["data"], "notes": msg.get("notes", "")},
                      message=f"building the model ({n:,} images loaded)")
        elif event == "begin":
            self.on_train_begin(msg["epochs"], msg["steps"], msg["initial_epoch"])
        elif event == "batch":
            self.on_batch(msg["epoch"], msg["step"], msg["steps"], msg["logs"])
        elif event == "epoch":
            self.on_epoch(msg["epoch"], msg["epochs"], msg["logs"])
        elif event in ("done", "error"):
            return msg
        return None

    def remove_files(self) -> None:
        """Delete the run's working files (model, card, checkpoints, log); saved copies stay."""
        from fer.modelfile import card_path
        from fer.training import run_dir

        for path in (self.out_path, card_path(self.out_path), self.log_path()):
            path.unlink(missing_ok=True)
        shutil.rmtree(run_dir(self.out_path), ignore_errors=True)

    def _remove_upload(self) -> None:
        if self.request.cleanup is not None:
            shutil.rmtree(self.request.cleanup, ignore_errors=True)


def _tail(path: Path, n: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "no log"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("I0000", "W0000", "WARNING: All log"))]
    return " | ".join(lines)[-n:] or "no log"


class JobManager:
    """At most one running job per server; remembers the last one for its results."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None
        atexit.register(self.shutdown)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running job and wait for it (server exit: the best epoch so far is still saved)."""
        job = self.current()
        if job is not None and job.running:
            job.cancel()
            self.wait(timeout)

    def current(self) -> TrainingJob | None:
        with self._lock:
            return self._job

    def start(self, request: TrainRequest, work_dir: Path) -> TrainingJob:
        with self._lock:
            if self._job is not None and self._job.running:
                raise JobBusy(f"training #{self._job.id} is still running ({self._job.message}); "
                              "wait for it to finish or cancel it")
            if self._job is not None:
                self._job.remove_files()  # the previous run's results are replaced (saved copies stay)
            work_dir.mkdir(parents=True, exist_ok=True)
            job = TrainingJob(request, out_path=work_dir / "pending.keras")
            job.out_path = work_dir / f"train-{int(job.started)}-{os.getpid()}-{job.id}.keras"
            job._thread = threading.Thread(target=job.run, name=f"fer-train-{job.id}", daemon=True)
            self._job = job
            job._thread.start()
            return job

    def forget(self) -> None:
        """Drop the finished job (its results); refuses while it runs."""
        with self._lock:
            if self._job is not None and self._job.running:
                raise JobBusy("cannot forget a running training; cancel it first")
            if self._job is not None:
                self._job.remove_files()
            self._job = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job ends (for tests and scripts); True if it ended."""
        job = self.current()
        if job is None or job._thread is None:
            return True
        job._thread.join(timeout)
        return not job._thread.is_alive()


MANAGER = JobManager()
