"""Many sessions at once: one shared recognizer, eight threads, while a training runs in its own process."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import scenes
from fer.app_services.jobs import JobManager, TrainRequest
from fer.labels import EMOTIONS
from synth import make_split, write_kaggle_folders

THREADS = 8


def results(recognizer, image) -> list[tuple]:
    return [(r.box, np.array([r.scores[e] for e in EMOTIONS])) for r in recognizer.analyze(image)]


def test_eight_threads_share_the_app_recognizer_while_a_training_runs(model_path, tmp_path):
    from fer.training import TrainConfig
    from ui import state

    data_dir = write_kaggle_folders(tmp_path / "d", {"train": make_split(4, 1)})
    manager = JobManager()
    cfg = TrainConfig(arch="vgg", epochs=100, batch_size=4, augment=False, warmup_epochs=0)
    job = manager.start(TrainRequest(data_dir, "tiny", cfg, use_cache=False), tmp_path / "runs")
    try:
        key = f"{model_path.resolve()}|{model_path.stat().st_mtime_ns}"  # what ui.state keys the cache on
        gate = threading.Barrier(THREADS)

        def load(_):
            gate.wait()  # eight sessions open a page at the same moment
            return state._load_recognizer(key)

        with ThreadPoolExecutor(THREADS) as pool:
            recognizers = list(pool.map(load, range(THREADS)))
        shared = recognizers[0]
        assert all(r is shared for r in recognizers)  # loaded once, shared by all

        images = [scenes.load("astronaut.jpg"), scenes.group(1).image, scenes.load("coffee.jpg"),
                  scenes.portrait("grace_hopper.jpg", 90, 20).image]
        expected = [results(shared, im) for im in images]
        jobs = [i % len(images) for i in range(3 * THREADS)]

        def analyze(i: int):
            if i < THREADS:
                gate.wait()  # the first eight really run together
            return results(shared, images[jobs[i]])

        with ThreadPoolExecutor(THREADS) as pool:
            got = list(pool.map(analyze, range(len(jobs))))
        for i, found in zip(jobs, got):
            assert [b for b, _ in found] == [b for b, _ in expected[i]]
            for (_, p), (_, q) in zip(found, expected[i]):
                np.testing.assert_allclose(p, q, atol=1e-5)
        assert any(expected) and sum(len(e) for e in expected) >= 3

        # the training never ran on a thread of this (serving) process: it has its own process
        assert job.running and job._thread is not threading.current_thread()
        assert job._proc is None or job._proc.pid != os.getpid()
    finally:
        job.cancel()
        assert manager.wait(120)
    assert job._thread is not None and not job._thread.is_alive()
    assert job.returncode is not None  # a real child process ran and exited
    manager.forget()
