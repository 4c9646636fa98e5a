// The component's page: Streamlit's component protocol, the camera, the overlay and a summary sent to
// the server about once a second (never frames; the main face's 48x48 gray crop only while the visitor
// captures calibration snapshots). The analysis runs in worker.js.

const view = document.getElementById("view"), ctx = view.getContext("2d");
const video = document.getElementById("camera"), button = document.getElementById("start");
const statusLine = document.getElementById("status");

let config = null, worker = null, ready = false, stream = null, busy = false, frameId = 0;
let parity = null;  // a second pipeline for window.ferLive.analyse (tests)
const parityWaiting = new Map();
let capturing = false;  // the visitor is taking calibration snapshots: summaries carry the main face's crop
let faces = [], seq = 0, lastSent = 0, points = [], errors = 0, lastError = null;
const meter = { last: null, interval: null };
const camera = { first: null, last: null, frames: 0, seen: 0, sent: 0, sentAt: 0 };
let latest = { latency: 0, behind: 0, ms: 0 };

// ------------------------------------------------------------------ Streamlit's component protocol
function send(type, data) { window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*"); }
const setHeight = () => send("streamlit:setFrameHeight", { height: document.body.scrollHeight + 8 });
const setValue = (value) => send("streamlit:setComponentValue", { value, dataType: "json" });

window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") render(event.data.args || {});
});
send("streamlit:componentReady", { apiVersion: 1 });

function render(args) {
  capturing = !!args.capture;
  if (!worker || args.config.model !== config.model || args.config.detector !== config.detector) start(args);
  else if (args.smoothing !== config.smoothing || args.min_score !== config.min_score) {
    config = { ...config, smoothing: args.smoothing, min_score: args.min_score };
    worker.postMessage({ type: "options", smoothing: args.smoothing, min_score: args.min_score });
  }
  setHeight();
}

// ------------------------------------------------------------------ the models
function newWorker(onMessage, smoothing) {
  const w = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  w.onmessage = onMessage;
  w.postMessage({ type: "init", config, base: new URL("./", location.href).href, smoothing });
  return w;
}

/** A worker for ``args`` (a new model selected: the old worker goes, the camera keeps running). */
function start(args) {
  if (worker) worker.terminate();
  if (parity) { parity.terminate(); parity = null; }
  config = { ...args.config, smoothing: args.smoothing, min_score: args.min_score };
  ready = false; busy = false; faces = [];
  if (!stream) { button.disabled = true; button.textContent = "Loading…"; }
  statusLine.textContent = "Loading the face detector and the emotion model…";
  worker = newWorker(onWorker, config.smoothing);
}

function onWorker(event) {
  const msg = event.data;
  if (msg.type === "progress") statusLine.textContent = `Loading the models in your browser: ${msg.text}`;
  else if (msg.type === "ready") {
    ready = true;
    button.disabled = false; button.textContent = "Start";
    statusLine.textContent = `Models ready (${(msg.ms / 1000).toFixed(1)} s). Press Start and allow the camera: `
      + "the video stays in this browser.";
  } else if (msg.type === "result") onResult(msg);
  else if (msg.type === "error") {
    errors += 1; lastError = msg.message; busy = false;
    if (!ready) statusLine.textContent = `Could not load the models: ${msg.message}`;
  }
}

// ------------------------------------------------------------------ the camera
button.addEventListener("click", () => (stream ? stop() : openCamera()));

async function openCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (err) {
    statusLine.textContent = `No camera: ${err.message}. Allow the camera for this site (the page needs HTTPS or localhost).`;
    return;
  }
  video.srcObject = stream;
  await video.play();
  button.textContent = "Stop"; button.classList.remove("primary");
  statusLine.textContent = "Running in your browser: no image leaves this device.";
  Object.assign(camera, { first: null, last: null, frames: 0, seen: 0, sent: 0, sentAt: 0 });
  Object.assign(meter, { last: null, interval: null });
  worker.postMessage({ type: "reset" });
  video.requestVideoFrameCallback(onFrame);
}

function stop() {
  for (const track of stream.getTracks()) track.stop();
  stream = null; video.srcObject = null; faces = [];
  button.textContent = "Start"; button.classList.add("primary");
  statusLine.textContent = "Stopped.";
  sendSummary(true);
}

async function onFrame(now, meta) {
  if (!stream) return;
  const t = meta.mediaTime;
  if (camera.first === null) camera.first = t; else camera.frames += 1;
  camera.last = t; camera.seen += 1;
  if (view.width !== video.videoWidth) { view.width = video.videoWidth; view.height = video.videoHeight; setHeight(); }
  draw();
  if (ready && !busy) await sendFrame();
  video.requestVideoFrameCallback(onFrame);
}

/** The newest camera frame to the worker (one at a time: frames that come meanwhile are skipped, as on the server). */
async function sendFrame() {
  busy = true; camera.sent += 1; camera.sentAt = camera.seen;
  const bitmap = await createImageBitmap(video);
  worker.postMessage({ type: "frame", id: ++frameId, t: performance.now(), bitmap }, [bitmap]);
}

function onResult(msg) {
  busy = false;
  faces = msg.faces;
  const now = performance.now();
  if (meter.last !== null) {
    const dt = (now - meter.last) / 1000;
    if (dt > 10) meter.interval = null;
    else if (dt > 0) meter.interval = meter.interval === null ? dt : 0.8 * meter.interval + 0.2 * dt;
  }
  meter.last = now;
  latest = { ms: msg.ms, behind: now - msg.t };
  const main = mainFace(faces);
  if (main) points.push([Date.now() / 1000, main.probs.map((p) => Math.round(p * 1e4) / 1e4)]);
  window.ferLive.results += 1;
  window.ferLive.stats = msg.stats;
  if (now - lastSent >= (capturing ? 250 : 1000)) sendSummary(false);
  if (stream && camera.seen > camera.sentAt) sendFrame();  // a newer frame is waiting: no idle gap
}

const mainFace = (list) => list.reduce((a, f) => (!a || f.box[2] * f.box[3] > a.box[2] * a.box[3] ? f : a), null);

function draw() {
  ctx.drawImage(video, 0, 0, view.width, view.height);
  const unit = Math.max(view.width, view.height) / 640;
  ctx.lineWidth = Math.max(1, Math.round(2 * unit));
  ctx.font = `${Math.round(16 * unit)}px sans-serif`;
  for (const f of faces) {
    const color = config.colors[f.emotion] || "#ffffff";
    const [x, y, w, h] = f.box;
    ctx.strokeStyle = color; ctx.strokeRect(x, y, w, h);
    const label = `${f.track_id ? `#${f.track_id} ` : ""}${f.emotion} ${Math.round(f.score * 100)}%`;
    const tw = ctx.measureText(label).width + 8, th = Math.round(20 * unit);
    ctx.fillStyle = color; ctx.fillRect(x, Math.max(0, y - th), tw, th);
    ctx.fillStyle = textColor(color); ctx.fillText(label, x + 4, Math.max(0, y - th) + th - 5 * unit);
    window.ferLive.drawn += 1;
  }
}

function textColor(hex) {
  const r = parseInt(hex.slice(1, 3), 16), g = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000" : "#fff";
}

function base64(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

/** About once a second (four times a second while capturing calibration snapshots): the metrics and the main face's probabilities since the last summary (no pixels). */
function sendSummary(stopped) {
  lastSent = performance.now();
  const main = mainFace(faces), span = camera.last - camera.first;
  const keep = points.splice(0, points.length);
  const step = Math.max(1, Math.ceil(keep.length / 30));
  setValue({
    seq: ++seq, t: Date.now() / 1000, playing: !stopped && !!stream,
    fps: meter.interval ? 1 / meter.interval : 0, camera_fps: span > 0 ? camera.frames / span : 0,
    latency_ms: latest.ms, behind_ms: latest.behind, skipped: camera.seen - camera.sent, n_faces: faces.length,
    emotion: main ? main.emotion : null, score: main ? main.score : 0, probs: main ? main.probs : [],
    points: keep.filter((_, i) => i % step === 0), errors, last_error: lastError,
    crop: capturing && main ? base64(main.crop) : null,  // only while the visitor captures snapshots
  });
}

// ------------------------------------------------------------------ for tests and benchmarks
window.ferLive = {
  results: 0, drawn: 0,
  /** Analyse raw RGBA frames in a fresh pipeline of their own (not the camera's), unsmoothed. */
  analyse(rgba, width, height) {
    if (!parity) {
      parity = newWorker((e) => {
        if (e.data.type === "ready") parityWaiting.get("ready")?.();
        else parityWaiting.get(e.data.id)?.(e.data);
      }, false);
      parity.readyPromise = new Promise((resolve) => parityWaiting.set("ready", resolve));
    }
    const id = ++frameId;
    return parity.readyPromise.then(() => new Promise((resolve) => {
      parityWaiting.set(id, resolve);
      parity.postMessage({ type: "rgba", id, t: performance.now(), data: rgba, width, height, raw: true });
    }));
  },
};
