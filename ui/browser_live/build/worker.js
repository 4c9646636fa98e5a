// The page's worker: onnxruntime-web on one WASM thread and the whole live path (pipeline.js), so the
// page stays responsive. Messages in: init, frame (an ImageBitmap), rgba (raw pixels), reset.
// Messages out: ready, result, error. Nothing here talks to the server.
import * as ort from "./ort.wasm.min.mjs";
import { createEngine } from "./engine.js";
import { FaceTracker, LiveStream } from "./pipeline.js";

ort.env.wasm.numThreads = 1;  // Streamlit pages are not cross-origin isolated: no WASM threads
ort.env.wasm.wasmPaths = new URL("./", import.meta.url).href;

let stream = null, tracker = null, canvas = null, ctx = null, smoothing = true, grabMs = 0;

/** A model file's bytes, with progress messages for the page's loading state. */
async function download(url, what) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  const size = Number(response.headers.get("content-length")) || 0, parts = [], reader = response.body.getReader();
  let got = 0;
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    parts.push(value); got += value.length;
    if (size) postMessage({ type: "progress", text: `${what}, ${(got / 1e6).toFixed(1)} of ${(size / 1e6).toFixed(1)} MB` });
  }
  const bytes = new Uint8Array(got);
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.length; }
  return bytes;
}

async function init(msg) {
  const t0 = performance.now();
  const detector = await download(new URL(msg.config.detector, msg.base).href, "face detector");
  const model = await download(new URL(msg.config.model, msg.base).href, "emotion model");
  postMessage({ type: "progress", text: "starting the engine (one WASM thread)…" });
  const engine = await createEngine(ort, detector, model);
  stream = new LiveStream(msg.config, engine);
  tracker = new FaceTracker(msg.config);
  smoothing = msg.smoothing !== false;
  postMessage({ type: "ready", ms: performance.now() - t0 });
}

function pixels(bitmap) {
  if (!canvas || canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    ctx = canvas.getContext("2d", { willReadFrequently: true });
  }
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height).data;
}

async function analyse(msg, rgba, width, height) {
  const t0 = performance.now();
  const raw = await stream.process(rgba, width, height);
  const faces = smoothing ? tracker.update(raw) : raw;
  postMessage({ type: "result", id: msg.id, t: msg.t, width, height, faces, raw: msg.raw ? raw : undefined,
    ms: performance.now() - t0, stats: { ...stream.stats, ms: { ...stream.stats.ms, grab: grabMs } } });
}

let queue = Promise.resolve();  // one message at a time, in order (init finishes before the first frame)
onmessage = (event) => { queue = queue.then(() => handle(event.data)); };

async function handle(msg) {
  try {
    if (msg.type === "init") await init(msg);
    else if (msg.type === "options") {
      if (msg.smoothing !== smoothing) tracker.reset();
      smoothing = msg.smoothing; stream.minScore = msg.min_score;
    } else if (msg.type === "reset") { stream.reset(); tracker.reset(); }
    else if (msg.type === "frame") {
      const { width, height } = msg.bitmap, t0 = performance.now();
      const rgba = pixels(msg.bitmap);
      grabMs += performance.now() - t0;
      await analyse(msg, rgba, width, height);
    }
    else if (msg.type === "rgba") await analyse(msg, msg.data, msg.width, msg.height);
  } catch (err) {
    postMessage({ type: "error", id: msg.id, message: String(err && err.message ? err.message : err) });
  }
}
