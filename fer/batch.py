"""Many images and videos at once, on Ray Data (``python -m fer batch INPUT... --out results.parquet``).

::

    paths = list_inputs(["photos/", "clips/*.mp4", "manifest.csv"])
    summary = run_batch(paths, "results.parquet", profile="live", every_nth_frame=10)

The pipeline is a Ray Data dataset of input paths, mapped by :class:`Analyzer` (``map_batches`` on
an actor pool: one :class:`fer.EmotionRecognizer` per actor, loaded once) into table rows. An
image gives one row per face (as ``predict --json``); a video one row per face per sampled frame
(frames read by :func:`fer.video.sample_frames`), with its time; an input with no face one row with
an empty ``face``; an unreadable input one row whose ``error`` says why.

**Resumable.** The driver writes every block of rows it receives to ``OUT.parts/part-*.parquet``
(atomically) as it arrives, so Ctrl-C loses no finished row. At the end the parts (and any rows an
earlier run left in OUT) are merged into OUT, one Parquet or CSV file. A rerun with the same OUT
skips every input already there or in the parts.

Ray is optional (``python -m pip install -r requirements-scale.txt``); it is
imported only inside :func:`run_batch`.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from fer.faces import PHOTO_MIN_FACE
from fer.images import IMAGE_EXTENSIONS
from fer.labels import EMOTIONS
from fer.video import VIDEO_TYPES

INSTALL_HINT = "Ray is not installed: python -m pip install -r requirements-scale.txt"
MANIFEST_EXTENSIONS = (".txt", ".csv", ".lst")
VIDEO_EXTENSIONS = tuple(f".{t}" for t in VIDEO_TYPES)
COLUMNS = ["file", "frame", "time_s", "face", "x", "y", "w", "h", "detector_score", "emotion", "score",
           *EMOTIONS, "model", "profile", "error"]
"""Columns of the output table: ``predict --json``'s fields, flat (``face``: index within the frame,
left to right; ``x, y, w, h``: the box in the original's pixels; ``time_s``: empty for images)."""


def require_ray():
    """The ``ray`` module, or ``ImportError`` with the one line that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


# ---------------------------------------------------------------- inputs


def list_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Every input file: folders (recursive, images and videos), globs, files, manifests (one path a line,
    or a CSV with a ``path`` or ``file`` column; relative paths are from the manifest's folder).
    Duplicates are dropped, the order kept. ``ValueError`` for an input that matches nothing."""
    out: dict[str, None] = {}
    for item in inputs:
        found = _expand(str(item))
        if not found:
            raise ValueError(f"input {item} matches no file; give files, folders, globs or a manifest (.txt/.csv)")
        out.update(dict.fromkeys(found))
    return list(out)


def _expand(item: str) -> list[str]:
    path = Path(item)
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and _is_media(p))
    if path.is_file():
        return read_manifest(path) if path.suffix.lower() in MANIFEST_EXTENSIONS else [str(path)]
    if glob.has_magic(item):
        return [p for m in sorted(glob.glob(item, recursive=True)) for p in _expand(m)]
    return []


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS or path.suffix.lower() in VIDEO_EXTENSIONS


def read_manifest(path: str | Path) -> list[str]:
    """The paths a manifest lists: a text file (one a line, ``#`` comments) or a CSV with a header naming
    a ``path`` or ``file`` column (else its first column). Listed files need not exist (they become error rows)."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if path.suffix.lower() == ".csv" and lines:
        rows = list(csv.reader(lines))
        header = [h.strip().lower() for h in rows[0]]
        col = next((header.index(c) for c in ("path", "file", "filename") if c in header), None)
        lines = [r[col or 0].strip() for r in (rows[1:] if col is not None else rows) if r and r[col or 0].strip()]
    return [ln if Path(ln).is_absolute() else str(path.parent / ln) for ln in lines]


# ---------------------------------------------------------------- analysis (in the actors)


@dataclass(frozen=True)
class BatchOptions:
    """What each actor's recognizer is and how videos are sampled."""

    profile: str = "photo"
    model: str | None = None
    every_nth_frame: int = 10
    min_score: float = 0.5
    input_size: int = 640
    min_face: int = PHOTO_MIN_FACE
    """Images: the smallest face to find (:func:`fer.faces.detector_sizes`); video frames get one pass."""
    engine: str = "onnx"
    """The recognizer's engine (:data:`fer.inference.ENGINES`). "onnx": the driver converts the models
    once (cached on disk), and the actors start without importing TensorFlow."""

    def __post_init__(self) -> None:
        from fer.inference import ENGINES

        if self.every_nth_frame < 1:
            raise ValueError(f"--every-nth-frame {self.every_nth_frame} must be 1 or more")
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is unknown; use one of: {', '.join(ENGINES)}")

    def prepare(self) -> None:
        """On the driver, before the actors start: engine "onnx" converts the models once into the cache
        (:func:`fer.onnx_runtime.onnx_for_file`), so that the actors on this machine load them without
        TensorFlow; raises ``ValueError`` for a bad ``model`` here rather than in every actor."""
        if self.engine == "onnx":
            from fer.onnx_runtime import UnsupportedModel, load_onnx_profile

            try:
                load_onnx_profile(self.profile, self.model)
            except UnsupportedModel as exc:
                raise ValueError(f"{exc} (to run this model as it is, use --engine keras)") from None

    @cached_property
    def model_name(self) -> str:
        """The model file's name, or the profile's member files joined by "+" (the ``model`` column)."""
        from fer.profiles import read_manifest as read_profiles

        if self.model is not None:
            return Path(self.model).name
        return "+".join(read_profiles()["profiles"][self.profile]["members"])


def _empty_row(file: str, opts: BatchOptions, **values) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(file=file, model=opts.model_name, profile=opts.profile, **values)
    return row


def _face_rows(file: str, faces: list[dict], opts: BatchOptions, frame: int = 0,
               time_s: float | None = None) -> list[dict]:
    if not faces:
        return [_empty_row(file, opts, frame=frame, time_s=time_s)]
    rows = []
    for i, f in enumerate(faces):
        x, y, w, h = f["box"]
        rows.append(_empty_row(file, opts, frame=frame, time_s=time_s, face=i, x=x, y=y, w=w, h=h,
                               detector_score=f["detector_score"], emotion=f["emotion"], score=f["score"],
                               **f["scores"]))
    return rows


def analyze_path(recognizer, path: str, opts: BatchOptions) -> list[dict]:
    """The rows of one input (never raises for a bad file: it becomes one row with ``error``)."""
    from fer.cli_predict import predict_entry

    if Path(path).suffix.lower() not in VIDEO_EXTENSIONS:
        entry = predict_entry(recognizer, path, path)
        if "error" in entry:
            return [_empty_row(path, opts, error=entry["error"])]
        return _face_rows(path, entry["faces"], opts)
    from fer.video import sample_frames

    rows: list[dict] = []
    try:
        for index, time_s, frame in sample_frames(path, opts.every_nth_frame):
            faces = [r.to_dict() for r in recognizer.analyze(frame, min_face=0)]  # frames: one detector pass
            rows += _face_rows(path, faces, opts, frame=index, time_s=time_s)
    except (ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [_empty_row(path, opts, error=message)]
    return rows or [_empty_row(path, opts, error="no frames could be read; the file may be damaged")]


def schema():
    """The output table's Arrow schema (the same for every block, so parts always merge)."""
    import pyarrow as pa

    types = {"file": pa.string(), "frame": pa.int64(), "time_s": pa.float64(), "face": pa.int64(),
             "x": pa.int64(), "y": pa.int64(), "w": pa.int64(), "h": pa.int64(), "emotion": pa.string(),
             "model": pa.string(), "profile": pa.string(), "error": pa.string()}
    return pa.schema([(c, types.get(c, pa.float64())) for c in COLUMNS])


def rows_to_table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema())


class Analyzer:
    """The ``map_batches`` callable: one recognizer per actor, loaded once, turning path batches into rows."""

    def __init__(self, opts: BatchOptions) -> None:
        threads = os.environ.get("OMP_NUM_THREADS", "")  # Ray sets it to the CPUs this actor holds
        if threads.isdigit():  # one actor per core: the thread pools must not fight each other
            os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
            os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)
            os.environ.setdefault("FER_DETECTOR_THREADS", threads)
        from fer.inference import EmotionRecognizer

        self.opts = opts
        self.recognizer = EmotionRecognizer(opts.model, profile=opts.profile, min_score=opts.min_score,
                                            input_size=opts.input_size, min_face=opts.min_face, engine=opts.engine)

    def __call__(self, batch):
        paths = [p for chunk in batch["paths"].to_pylist() for p in chunk]
        rows = [r for p in paths for r in analyze_path(self.recognizer, p, self.opts)]
        return rows_to_table(rows)


# ---------------------------------------------------------------- output: parts, resume, merge


def parts_dir(out: str | Path) -> Path:
    """Where a run keeps its finished blocks until they are merged into ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def read_table(path: Path):
    """A finished output (Parquet or CSV) or part as an Arrow table of :func:`schema`."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".csv" or _looks_like_csv(path):
        opts = pacsv.ConvertOptions(column_types=schema(), strings_can_be_null=True)
        return pacsv.read_csv(path, convert_options=opts).select(COLUMNS)
    return pq.read_table(path, schema=schema())


def _looks_like_csv(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) != b"PAR1"


def done_files(out: str | Path) -> set[str]:
    """Inputs already analysed: in ``out`` (a finished earlier run) or in its parts (an interrupted one)."""
    out, done = Path(out), set()
    sources = ([out] if out.is_file() else []) + sorted(parts_dir(out).glob("part-*.parquet"))
    for src in sources:
        done.update(read_table(src).column("file").to_pylist())
    return done


def write_part(out: str | Path, table) -> Path:
    """One block of rows into ``OUT.parts/`` (written to a temporary name, then renamed: never half there)."""
    import pyarrow.parquet as pq

    folder = parts_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{time.time_ns()}-{os.getpid()}.parquet"
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def merge(out: str | Path, as_csv: bool = False) -> int:
    """Merge ``out`` (if an earlier run wrote it) and its parts into ``out``; remove the parts. Row count."""
    import shutil

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(out)
    tables = ([read_table(out)] if out.is_file() else []) + [read_table(p) for p in
                                                            sorted(parts_dir(out).glob("part-*.parquet"))]
    table = pa.concat_tables(tables) if tables else rows_to_table([])
    table = table.sort_by([("file", "ascending"), ("frame", "ascending"), ("face", "ascending")])
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    if as_csv:
        pacsv.write_csv(table, tmp)
    else:
        pq.write_table(table, tmp)
    os.replace(tmp, out)
    shutil.rmtree(parts_dir(out), ignore_errors=True)
    return table.num_rows


# ---------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    """What a run did: inputs in total, skipped (done before), analysed now, failed, faces, rows in ``out``."""

    inputs: int
    skipped: int
    analysed: int = 0
    errors: int = 0
    faces: int = 0
    rows: int = 0
    seconds: float = 0.0
    out: Path | None = None


Progress = Callable[[int, int], None]
"""``progress(files_done, faces_done)`` after every block."""


def run_batch(paths: list[str], out: str | Path, opts: BatchOptions = BatchOptions(), *, as_csv: bool = False,
              address: str | None = None, num_cpus: int | None = None, actors: int | None = None,
              batch_size: int = 4, progress: Progress | None = None) -> BatchSummary:
    """Analyse ``paths`` on Ray Data into ``out``; skip those already done. See the module docstring.

    ``address``: None starts a local Ray (``num_cpus`` cores, default all); "auto" or "ray://host:port"
    joins a cluster. ``actors``: recognizers in the pool (default: one per CPU Ray has).
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as results.parquet")
    done = done_files(out)
    todo = [p for p in paths if p not in done]
    summary = BatchSummary(inputs=len(paths), skipped=len(paths) - len(todo), out=out)
    start = time.perf_counter()
    if todo:
        _run_ray(todo, out, opts, summary, address, num_cpus, actors, batch_size, progress)
    summary.rows = merge(out, as_csv)
    summary.seconds = time.perf_counter() - start
    return summary


def _run_ray(todo: list[str], out: Path, opts: BatchOptions, summary: BatchSummary, address: str | None,
             num_cpus: int | None, actors: int | None, batch_size: int, progress: Progress | None) -> None:
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address, num_cpus)
    try:
        opts.prepare()
        pool = actors or max(1, int(ray.available_resources().get("CPU", 1)))
        # one row (and block) per chunk of ``batch_size`` paths: each actor call turns one chunk into one
        # block of rows, which the driver writes as one part, so a file's rows are never split
        chunks = [{"paths": todo[i : i + batch_size]} for i in range(0, len(todo), batch_size)]
        ds = ray.data.from_items(chunks, override_num_blocks=len(chunks))
        ds = ds.map_batches(Analyzer, fn_constructor_args=(opts,), batch_size=1, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=min(pool, len(chunks))), num_cpus=1)
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            _take(block, out, summary, progress)
    finally:
        if started_here:
            ray.shutdown()


def _take(block, out: Path, summary: BatchSummary, progress: Progress | None) -> None:
    import pyarrow.compute as pc

    if block.num_rows == 0:
        return
    write_part(out, block.select(COLUMNS))
    files = block.column("file")
    summary.analysed += len(pc.unique(files))
    summary.errors += len(pc.unique(pc.filter(files, pc.is_valid(block.column("error")))))
    summary.faces += block.num_rows - pc.sum(pc.is_null(block.column("face"))).as_py()
    if progress is not None:
        progress(summary.analysed, summary.faces)


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the ``with`` block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray on this machine (``address=None``; ``num_cpus`` cores, default all) or join a cluster
    ("auto", "ray://host:port"), quietly; workers started here import fer from this checkout."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"ray(\.|$)")  # Ray's own deprecation notices
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray = require_ray()
    if address is None:
        # Local workers import fer from the same checkout as this process. They inherit the raylet's
        # environment, set here while Ray starts: unlike a job runtime_env, this lets the actors use the
        # workers Ray prestarts, which saves seconds of start-up.
        root = str(Path(__file__).resolve().parent.parent)
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        with _environment(PYTHONPATH=pythonpath, TF_CPP_MIN_LOG_LEVEL="3"):
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours counts files and faces
    ctx.print_on_execution_start = False
