"""8-bit emotion graphs in the browser: onnxruntime-web (WebAssembly, one thread) float32 against int8, one run.

    python benchmarks/wasm_int8.py models/fer_default.keras --data path/to/fer2013 [--faces 1000] [--repeats 200]
        [--reduce-range]

The in-browser live mode runs one emotion model on onnxruntime-web's single WASM thread (docs/browser_live.md),
where classification is the largest share of a frame. This script takes the model's float32 ONNX graph (the one
the page gets) and the int8 copy ``benchmarks/int8_speed.py`` makes (same settings, calibrated on 1,024 training
faces), and runs both in headless Chromium (``/usr/bin/chromium`` or ``FER_CHROMIUM``) with the onnxruntime-web
build the app ships (``ui/browser_live/build``), served from a temporary folder on localhost. It prints, for each
graph, public_test accuracy on the first ``--faces`` faces (uncorrected, one pass, in the page), the share of
faces where the two graphs' labels agree, and the median ms per face of ``--repeats`` one-face calls, with the
float32/int8 ratio. Nothing is written to ``models/`` or to the app's build.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402

BUILD = ROOT / "ui" / "browser_live" / "build"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")

PAGE = """<!doctype html><meta charset="utf-8"><title>wasm int8</title>
<script type="module">
import * as ort from "./ort.wasm.min.mjs";
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL("./", import.meta.url).href;
const cfg = await (await fetch("config.json")).json();
const faces = new Float32Array(await (await fetch("faces.bin")).arrayBuffer());
const side = 48 * 48, out = {};
try {
  for (const name of ["float32", "int8"]) {
    const session = await ort.InferenceSession.create(`${name}.onnx`, { executionProviders: ["wasm"] });
    const input = session.inputNames[0], output = session.outputNames[0];
    const labels = [];
    for (let i = 0; i < cfg.n; i += 64) {
      const k = Math.min(64, cfg.n - i);
      const x = new ort.Tensor("float32", faces.subarray(i * side, (i + k) * side), [k, 48, 48, 1]);
      const p = (await session.run({ [input]: x }))[output].data;
      for (let j = 0; j < k; j++) {
        let best = 0;
        for (let c = 1; c < 7; c++) if (p[j * 7 + c] > p[j * 7 + best]) best = c;
        labels.push(best);
      }
    }
    const one = new ort.Tensor("float32", faces.subarray(0, side), [1, 48, 48, 1]);
    for (let r = 0; r < 20; r++) await session.run({ [input]: one });  // warm-up
    const ms = [];
    for (let r = 0; r < cfg.repeats; r++) {
      const t = performance.now();
      await session.run({ [input]: one });
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    out[name] = { labels, ms: ms[Math.floor(ms.length / 2)] };
  }
  window.result = out;
} catch (e) {
  window.result = { error: String(e) };
}
</script>"""


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A quiet localhost HTTP server for ``folder``; returns it and its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                          ".wasm": "application/wasm"}

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run_in_chromium(folder: Path, timeout_s: float) -> dict:
    """Load the page from ``folder`` in headless Chromium and return what it measured."""
    from playwright.sync_api import sync_playwright

    server, url = serve(folder)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"{url}/index.html")
            page.wait_for_function("() => window.result !== undefined", timeout=timeout_s * 1000)
            result = page.evaluate("() => window.result")
            browser.close()
    finally:
        server.shutdown()
    if "error" in result:
        raise RuntimeError(f"onnxruntime-web failed in the page: {result['error']}")
    return result


def measure(model: Path, train_x: np.ndarray, x: np.ndarray, y: np.ndarray, repeats: int, reduce_range: bool,
            timeout_s: float) -> dict:
    """Both graphs of ``model`` in the page: accuracy on (x, y), label agreement, median ms for one face."""
    from int8_speed import graphs

    graph, small = graphs(model, train_x, reduce_range=reduce_range)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ORT_FILES:
            shutil.copy(BUILD / name, folder / name)
        (folder / "float32.onnx").write_bytes(graph)
        (folder / "int8.onnx").write_bytes(small)
        (folder / "faces.bin").write_bytes(x.astype("<f4").tobytes())
        (folder / "config.json").write_text(json.dumps({"n": len(x), "repeats": repeats}))
        (folder / "index.html").write_text(PAGE)
        result = run_in_chromium(folder, timeout_s)
    labels = {k: np.asarray(v["labels"]) for k, v in result.items()}
    return {"model": model.name, "acc": {k: float((v == y).mean() * 100) for k, v in labels.items()},
            "agree": float((labels["float32"] == labels["int8"]).mean() * 100),
            "ms": {k: float(v["ms"]) for k, v in result.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help=".keras model files (their ONNX graphs are measured)")
    p.add_argument("--data", required=True, help="the FER2013 folder: train (calibration) and public_test")
    p.add_argument("--faces", type=int, default=1000, help="public_test faces classified in the page")
    p.add_argument("--repeats", type=int, default=200, help="timed one-face calls per graph (the median is kept)")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights, as int8_speed.py --reduce-range")
    p.add_argument("--timeout", type=float, default=600, help="seconds the page may take per model")
    args = p.parse_args(argv)
    if args.faces < 1 or args.repeats < 1:
        print("error: --faces and --repeats must be at least 1", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).is_file() or not all((BUILD / f).is_file() for f in ORT_FILES):
        print(f"error: needs Chromium at {CHROMIUM} (apt-get install chromium, or set FER_CHROMIUM) and the "
              f"app's onnxruntime-web build in {BUILD}", file=sys.stderr)
        return 2
    from int8_speed import load_data

    data = load_data(args.models, args.data)
    if data is None:
        return 2
    test = data.splits["public_test"]
    x, y = test.x[: args.faces].astype(np.float32), test.y[: args.faces]
    print(f"onnxruntime-web, one WASM thread, headless Chromium; {len(x)} public_test faces; weights: "
          f"{'7-bit (--reduce-range)' if args.reduce_range else '8-bit'}")
    print("| model | accuracy float32 | int8 | labels agree | ms/face float32, 1 face | int8 | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model in args.models:
        r = measure(model, data.splits["train"].x, x, y, args.repeats, args.reduce_range, args.timeout)
        print(f"| {r['model']} | {r['acc']['float32']:.2f}% | {r['acc']['int8']:.2f}% | {r['agree']:.1f}% "
              f"| {r['ms']['float32']:.2f} | {r['ms']['int8']:.2f} | {r['ms']['float32'] / r['ms']['int8']:.2f}x |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
