"""fer.serve and ``python -m fer serve``: FastAPI's TestClient on every route and refusal, then one real
uvicorn under a bounded concurrent load. Skipped where FastAPI is not installed (requirements-scale.txt)."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pytest

import badinput
import scenes

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from fer.cli_predict import predict_entry  # noqa: E402
from fer.serve import ServeLimits, create_app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PHOTO = (scenes.DATA / "grace_hopper.jpg").read_bytes()
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def rec():
    from fer.inference import EmotionRecognizer

    return EmotionRecognizer(profile="live", input_size=640)


@pytest.fixture(scope="module")
def client(rec):
    return TestClient(create_app(rec))


def test_health_and_model_card(client, rec):
    assert client.get("/health").json() == {"status": "ok", "profile": "live"}
    card = client.get("/model").json()
    assert card["profile"] == "live" and card["passes"] == rec.ensemble.passes
    assert card["members"][0]["architecture"] == rec.card.architecture and "public_test" in card


def test_analyze_answers_one_predict_entry_for_multipart_and_raw_bodies(client, rec):
    expected = predict_entry(rec, PHOTO, "grace.jpg")
    assert len(expected["faces"]) == 1
    multipart = client.post("/analyze", files={"file": ("grace.jpg", PHOTO, "image/jpeg")})
    assert multipart.status_code == 200 and multipart.json() == expected
    raw = client.post("/analyze", content=PHOTO, headers={"content-type": "image/jpeg", "x-filename": "grace.jpg"})
    assert raw.status_code == 200 and raw.json() == expected
    assert client.post("/analyze", content=PHOTO).json()["file"] == "upload"


def test_bad_images_are_400_with_the_reason_never_500(client, tmp_path):
    for case in badinput.image_corpus(tmp_path, huge=False):
        r = client.post("/analyze", files={"file": (case.name, case.path.read_bytes(), "application/octet-stream")})
        if case.expect == "ok":
            assert r.status_code == 200, (case.name, r.text)  # the crowd has 30 faces, under the 50 allowed
            found, most = len(r.json()["faces"]), 99 if case.max_faces is None else case.max_faces
            assert case.faces <= found <= most, (case.name, r.text)
            continue
        assert r.status_code in (400, 413), (case.name, r.status_code, r.text)
        assert r.json()["file"] == case.name
        assert case.message in r.json()["error"].lower() or r.status_code == 413, (case.name, r.text)


def test_malformed_requests_are_400(client):
    assert client.post("/analyze").status_code == 400
    no_file = client.post("/analyze", files={"note": (None, "no image here")})
    assert no_file.status_code == 400 and "no file" in no_file.json()["error"]
    broken = client.post("/analyze", content=b"--xyz\r\nnonsense", headers={"content-type": "multipart/form-data"})
    assert broken.status_code == 400 and "error" in broken.json()


def test_limits_on_bytes_pixels_and_faces(rec):
    small = TestClient(create_app(rec, limits=ServeLimits(max_bytes=len(PHOTO) - 1)))
    r = small.post("/analyze", content=PHOTO)
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    few_pixels = TestClient(create_app(rec, limits=ServeLimits(max_pixels=100_000)))
    r = few_pixels.post("/analyze", files={"file": ("g.jpg", PHOTO, "image/jpeg")})
    assert r.status_code == 413 and "pixels" in r.json()["error"] and r.json()["file"] == "g.jpg"
    group = cv2.imencode(".png", scenes.grid(110, 3, 2).image)[1].tobytes()
    one_face = TestClient(create_app(rec, limits=ServeLimits(max_faces=1)))
    r = one_face.post("/analyze", content=group)
    assert r.status_code == 422 and "faces, over the limit of 1" in r.json()["error"]
    with pytest.raises(ValueError, match="max_faces"):
        ServeLimits(max_faces=0)


def test_token_guards_analyze_and_model_but_not_health(rec):
    guarded = TestClient(create_app(rec, token=TOKEN))
    assert guarded.get("/health").status_code == 200
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN[:-1]}):
        r = guarded.post("/analyze", content=PHOTO, headers=headers)
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
        assert guarded.get("/model", headers=headers).status_code == 401
    ok = {"authorization": f"Bearer {TOKEN}"}
    assert guarded.post("/analyze", content=PHOTO, headers=ok).status_code == 200
    assert guarded.get("/model", headers=ok).status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_under_200_requests_from_8_threads():
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "FER_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "fer", "serve", "--port", str(port), "--profile", "live"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url, headers = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /health within 120 s"
            time.sleep(0.5)

        def one(_: int) -> tuple[int, float]:
            start = time.perf_counter()
            r = httpx.post(f"{url}/analyze", content=PHOTO, headers=headers, timeout=60)
            return (r.status_code if r.json().get("faces") else -1), time.perf_counter() - start

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(200)))
        codes = [c for c, _ in results]
        assert codes.count(200) == 200, {c: codes.count(c) for c in set(codes)}
        ms = sorted(1000 * t for _, t in results)
        p50, p95 = statistics.median(ms), ms[int(0.95 * len(ms)) - 1]
        print(f"\nuvicorn, 200 requests from 8 threads: 0 errors, p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
