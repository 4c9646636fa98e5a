"""The live page's camera figures: camera frames/s, frames skipped and lag, and its thinned timeline."""

from __future__ import annotations

import pytest

from ui.live import CameraClock


def test_clock_counts_the_frames_skipped_between_processed_ones():
    clock = CameraClock()
    period = 1 / 30
    # analysed: camera frames 0, 1, 3, 6 (frames 2, 4 and 5 came in meanwhile and were skipped)
    out = [clock.tick(k * period, 100 + k * period, 100 + k * period + 0.010, received=n)
           for k, n in ((0, 1), (1, 1), (3, 2), (6, 3))]
    fps, skipped, behind = out[-1]
    assert fps == pytest.approx(30.0) and skipped == 3
    assert behind == pytest.approx(10.0, abs=0.01)


def test_clock_camera_rate_is_not_fooled_by_jittery_timestamps():
    clock = CameraClock()
    t = 0.0
    for jitter in [0.0, -0.007, 0.006, 0.0, 0.004, -0.005, 0.0, 0.002, 0.0, 0.0, -0.003]:
        fps, skipped, _ = clock.tick(t + jitter, 10 + t, 10 + t + 0.01)
        t += 1 / 30
    assert fps == pytest.approx(30.0, rel=0.05) and skipped == 0


def test_clock_measures_the_lag_a_busy_server_adds():
    clock = CameraClock()
    clock.tick(0.0, 50.0, 50.005)
    fps, skipped, behind = clock.tick(0.1, 50.25, 50.3)  # arrived 150 ms later than the first frame's pace
    assert behind == pytest.approx(200.0, abs=0.01) and skipped == 0 and fps == pytest.approx(10.0)


def test_clock_without_timestamps_and_after_a_restart():
    clock = CameraClock()
    assert clock.tick(None, 1.0, 1.0, received=3) == (0.0, 2, 0.0)
    clock.tick(5.0, 10.0, 10.0)
    clock.tick(5.1, 10.1, 10.1)
    fps, _, behind = clock.tick(0.0, 20.0, 20.01)  # the stream restarted: timestamps from 0 again
    assert fps == 0.0 and behind == pytest.approx(10.0, abs=0.01)  # the new stream is its own reference


def test_timeline_is_thinned_for_the_chart_and_keeps_the_newest_point():
    from ui.live import FrameResult, Timeline

    timeline = Timeline(window_s=60)
    items = [FrameResult(100 + i / 30, 30.0, 1, "happy", 0.9, {"happy": 0.9}, 3.0) for i in range(1800)]
    timeline.extend(items, now=160.0)
    times, scores = timeline.series(now=160.0, max_points=300)
    assert len(times) <= 300 and len(times) == len(scores)
    assert times[-1] == pytest.approx(items[-1].t - 160.0) and times == sorted(times)
