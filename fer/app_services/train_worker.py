"""The training worker process: ``python -m fer.app_services.train_worker REQUEST.json``
(started by :mod:`fer.app_services.jobs`).

Training runs in its own process, not in a thread of the Streamlit server: the server calls
``keras.backend.clear_session()`` and a full garbage collection after every script run (every
second while a page polls), which would reset Keras' global state under a training thread and
slow it to a crawl, and the training's Python work would compete for the server's GIL.

Protocol: the request is a JSON file (see :func:`fer.app_services.jobs.TrainingJob.request_json`). The worker
writes one JSON object per line on stdout (``event``: loaded, begin, batch, epoch, done, error);
a line ``cancel`` on stdin, or stdin closing (the server went away), cancels the run within one
batch, and the best epoch so far is still saved. No Streamlit here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

BATCH_EVENTS_PER_S = 4.0


class _Emitter:
    """The listener for :func:`fer.training.train`: progress as JSON lines on stdout."""

    def __init__(self, out) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.last_batch = 0.0

    def emit(self, event: str, **data) -> None:
        with self.lock:
            self.out.write(json.dumps({"event": event, **data}) + "\n")
            self.out.flush()

    def on_train_begin(self, epochs: int, steps: int, initial_epoch: int) -> None:
        self.emit("begin", epochs=epochs, steps=steps, initial_epoch=initial_epoch)

    def on_batch(self, epoch: int, step: int, steps: int, logs: dict) -> None:
        now = time.monotonic()
        if step == steps or step == 1 or now - self.last_batch >= 1.0 / BATCH_EVENTS_PER_S:
            self.last_batch = now
            self.emit("batch", epoch=epoch, step=step, steps=steps,
                      logs={k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})

    def on_epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        self.emit("epoch", epoch=epoch, epochs=epochs, logs={k: float(v) for k, v in logs.items()})


def _watch_stdin(cancel: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "cancel":
            break
    cancel.set()  # "cancel", or stdin closed: the server is gone


def run(request: dict, emitter: _Emitter, cancel: threading.Event) -> None:
    from fer.app_services.jobs import subset
    from fer.data import load_dataset
    from fer.training import TrainConfig, TrainingCancelled, train

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_dataset(request["data_path"], skip_unknown=request["skip_unknown"],
                                use_cache=request["use_cache"])
        config = TrainConfig.from_dict(request["config"])
        if request.get("quick_n"):
            data = subset(data, int(request["quick_n"]), seed=config.seed)
        emitter.emit("loaded", data=data.describe(), notes="; ".join(str(w.message) for w in caught))
        if cancel.is_set():
            raise TrainingCancelled("cancelled before training started")
        result = train(data, config, request["out_path"], listener=emitter, cancel=cancel,
                       init_model=request.get("init_model"), command="streamlit app: Train page")
        emitter.emit("done", model_path=str(result.model_path), cancelled=result.cancelled)
    except TrainingCancelled as exc:
        emitter.emit("error", kind="cancelled", message=str(exc) or "cancelled before the first epoch finished")
    except (ValueError, OSError) as exc:
        emitter.emit("error", kind="failed", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - report, do not die silently
        import traceback

        traceback.print_exc()
        emitter.emit("error", kind="failed", message=f"{type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m fer.app_services.train_worker REQUEST.json", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if hasattr(os, "nice"):
        try:
            os.nice(5)  # the web server's pages come first on a shared CPU
        except OSError:
            pass
    request = json.loads(Path(argv[0]).read_text())
    # stdout is the protocol channel: anything else printed goes to stderr (the job's log)
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    cancel = threading.Event()
    threading.Thread(target=_watch_stdin, args=(cancel,), daemon=True, name="cancel-watch").start()
    run(request, _Emitter(channel), cancel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
