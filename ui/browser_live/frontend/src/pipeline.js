// The live path of fer (fer/stream.py, fer/faces.py, fer/geometry.py, fer/detectors.py, fer/prior.py,
// fer/inference.py FaceTracker) ported to plain JavaScript, step for step, so that the page gives the
// server's answer. Every number comes from the config Python sends (fer/browser_models.py).
// Images are {data, width, height, channels} with uint8 pixels, RGB or gray. No DOM here.

import { pyramid, similarity, track } from "./flow.js";

// ------------------------------------------------------------------ small helpers

/** Python's round(): halves to even. */
export function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const clip = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/** OpenCV's BGR2GRAY (same fixed-point weights) of RGBA pixels (canvas ImageData). */
export function grayOf(rgba, width, height) {
  const n = width * height, gray = new Uint8Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 4) gray[i] = (rgba[j] * 4899 + rgba[j + 1] * 9617 + rgba[j + 2] * 1868 + 8192) >> 14;
  return { data: gray, width, height, channels: 1 };
}

/** RGB pixels of RGBA pixels. */
export function rgbOf(rgba, width, height) {
  const n = width * height, rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 4) { rgb[3 * i] = rgba[j]; rgb[3 * i + 1] = rgba[j + 1]; rgb[3 * i + 2] = rgba[j + 2]; }
  return { data: rgb, width, height, channels: 3 };
}

/** Area-weighted shrink (cv2.INTER_AREA for a smaller size), rounded to uint8: two separable passes. */
export function resizeArea(img, nw, nh) {
  const { data, width: w, height: h, channels: c } = img;
  const xt = areaTable(w, nw), yt = areaTable(h, nh);
  const tmp = new Float32Array(h * nw * c);
  for (let y = 0; y < h; y++) {
    const row = y * w * c, orow = y * nw * c;
    for (let ox = 0; ox < nw; ox++) {
      const s = xt.start[ox], n = xt.count[ox], off = xt.offset[ox];
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += data[row + (s + k) * c + ch] * xt.weight[off + k];
        tmp[orow + ox * c + ch] = acc;
      }
    }
  }
  const out = new Uint8Array(nw * nh * c), stride = nw * c, norm = 1 / ((w / nw) * (h / nh));
  for (let oy = 0; oy < nh; oy++) {
    const s = yt.start[oy], n = yt.count[oy], off = yt.offset[oy], orow = oy * stride;
    for (let i = 0; i < stride; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += tmp[(s + k) * stride + i] * yt.weight[off + k];
      out[orow + i] = clip(Math.round(acc * norm), 0, 255);
    }
  }
  return { data: out, width: nw, height: nh, channels: c };
}

/** For each output cell: the first source cell, how many, and their overlaps (flat). */
function areaTable(src, dst) {
  const scale = src / dst, start = new Int32Array(dst), count = new Int32Array(dst), offset = new Int32Array(dst);
  const weights = [];
  for (let d = 0; d < dst; d++) {
    const a = d * scale, b = Math.min((d + 1) * scale, src);
    offset[d] = weights.length; start[d] = -1;
    for (let s = Math.floor(a); s < Math.ceil(b - 1e-9); s++) {
      const wgt = Math.min(b, s + 1) - Math.max(a, s);
      if (wgt <= 1e-9) continue;
      if (start[d] < 0) start[d] = s;
      weights.push(wgt); count[d] += 1;
    }
  }
  return { start, count, offset, weight: Float64Array.from(weights) };
}

/** Bilinear resize with pixel centres (cv2.INTER_LINEAR), for enlargements. */
export function resizeLinear(img, nw, nh) {
  const { width: w, height: h } = img;
  const m = [[nw / w, 0, 0.5 * nw / w - 0.5], [0, nh / h, 0.5 * nh / h - 0.5]];
  return warpAffine(img, m, nw, nh);
}

/** Invert a 2x3 affine matrix. */
export function invertAffine(m) {
  const [[a, b, c], [d, e, f]] = m;
  const det = a * e - b * d;
  const ia = e / det, ib = -b / det, id = -d / det, ie = a / det;
  return [[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]];
}

/** cv2.warpAffine(img, m, (w, h), INTER_LINEAR, BORDER_REPLICATE): source positions in 1/32 pixel steps. */
export function warpAffine(img, m, w, h) {
  const { data, width: sw, height: sh, channels: c } = img;
  const inv = invertAffine(m);
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const X = Math.round((inv[0][0] * x + inv[0][1] * y + inv[0][2]) * 32);
      const Y = Math.round((inv[1][0] * x + inv[1][1] * y + inv[1][2]) * 32);
      const x0 = X >> 5, y0 = Y >> 5, fx = (X & 31) / 32, fy = (Y & 31) / 32;
      const xa = clip(x0, 0, sw - 1), xb = clip(x0 + 1, 0, sw - 1);
      const ya = clip(y0, 0, sh - 1), yb = clip(y0 + 1, 0, sh - 1);
      const o = (y * w + x) * c;
      for (let ch = 0; ch < c; ch++) {
        const v = (data[(ya * sw + xa) * c + ch] * (1 - fx) + data[(ya * sw + xb) * c + ch] * fx) * (1 - fy)
          + (data[(yb * sw + xa) * c + ch] * (1 - fx) + data[(yb * sw + xb) * c + ch] * fx) * fy;
        out[o + ch] = clip(Math.round(v), 0, 255);
      }
    }
  }
  return { data: out, width: w, height: h, channels: c };
}

function crop(img, x0, y0, x1, y1) {
  const { data, width, channels: c } = img;
  const w = x1 - x0, h = y1 - y0, out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) out.set(data.subarray(((y0 + y) * width + x0) * c, ((y0 + y) * width + x1) * c), y * w * c);
  return { data: out, width: w, height: h, channels: c };
}

function matmul23(m, n3) {  // (2x3) @ (3x3 with last row 0 0 1)
  return [0, 1].map((r) => [0, 1, 2].map((k) => m[r][0] * n3[0][k] + m[r][1] * n3[1][k] + m[r][2] * (k === 2 ? 1 : 0)));
}

/** fer.geometry.warp: a region shrunk more than 2x is first area-averaged, then warped. */
export function warp(img, m, w, h) {
  const scale = Math.sqrt(Math.abs(m[0][0] * m[1][1] - m[0][1] * m[1][0]));
  if (scale < 0.5) [img, m] = shrinkRegion(img, m, w, h, scale);
  return warpAffine(img, m, w, h);
}

function shrinkRegion(img, m, wOut, hOut, scale) {
  const inv = invertAffine(m);
  const cs = [[0, 0], [wOut, 0], [0, hOut], [wOut, hOut]].map(([x, y]) =>
    [inv[0][0] * x + inv[0][1] * y + inv[0][2], inv[1][0] * x + inv[1][1] * y + inv[1][2]]);
  const pad = 2.0 / scale, { width: w, height: h } = img;
  const xsC = cs.map((p) => p[0]), ysC = cs.map((p) => p[1]);
  const x0 = clip(Math.floor(Math.min(...xsC) - pad), 0, w - 1), y0 = clip(Math.floor(Math.min(...ysC) - pad), 0, h - 1);
  const x1 = clip(Math.ceil(Math.max(...xsC) + pad), x0 + 1, w), y1 = clip(Math.ceil(Math.max(...ysC) + pad), y0 + 1, h);
  const roi = crop(img, x0, y0, x1, y1);
  const k = scale * 2.0;
  const rw = Math.max(1, pyRound(roi.width * k)), rh = Math.max(1, pyRound(roi.height * k));
  const small = resizeArea(roi, rw, rh);
  const kx = rw / roi.width, ky = rh / roi.height;
  const back = [[1 / kx, 0, 0.5 / kx - 0.5 + x0], [0, 1 / ky, 0.5 / ky - 0.5 + y0], [0, 0, 1]];
  return [small, matmul23(m, back)];
}

// ------------------------------------------------------------------ CenterFace (fer/detectors.py)

/** NCHW float32 RGB 0..255 of one RGB image. */
function toBlob(img, out, offset = 0) {
  const { data, width: w, height: h } = img, n = w * h;
  for (let i = 0; i < n; i++) {
    out[offset + i] = data[3 * i];
    out[offset + n + i] = data[3 * i + 1];
    out[offset + 2 * n + i] = data[3 * i + 2];
  }
  return out;
}

function padTo32(img, value) {
  return padImage(img, 0, (32 - (img.height % 32)) % 32, 0, (32 - (img.width % 32)) % 32, value);
}

function padImage(img, top, bottom, left, right, value) {
  const { data, width, height, channels: c } = img;
  const w = width + left + right, h = height + top + bottom;
  const out = new Uint8Array(w * h * c).fill(value);
  for (let y = 0; y < height; y++) out.set(data.subarray(y * width * c, (y + 1) * width * c), ((y + top) * w + left) * c);
  return { data: out, width: w, height: h, channels: c };
}

/** The detector's input for an RGB image: scaled so its longer side is ``size``, padded to /32. */
export function detectorInput(rgb, size) {
  const { width: w, height: h } = rgb;
  const scale = size / Math.max(h, w);
  const nw = Math.max(1, pyRound(w * scale)), nh = Math.max(1, pyRound(h * scale));
  let resized = rgb;
  if (nw !== w || nh !== h) resized = scale < 1 ? resizeArea(rgb, nw, nh) : resizeLinear(rgb, nw, nh);
  const padded = padTo32(resized, 0);
  return { blob: toBlob(padded, new Float32Array(3 * padded.width * padded.height)), width: padded.width,
    height: padded.height, scale: nw / w };
}

function dilatedPeak(heat, w, h, r, c) {
  const v = heat[r * w + c];
  for (let y = Math.max(0, r - 1); y <= Math.min(h - 1, r + 1); y++) {
    for (let x = Math.max(0, c - 1); x <= Math.min(w - 1, c + 1); x++) if (heat[y * w + x] > v) return false;
  }
  return true;
}

/** Boxes from CenterFace's maps of one image (heat (h*w), size (2*h*w), offset (2*h*w), marks (10*h*w)). */
export function decodeCenterface(heat, size, offset, marks, h, w, minScore, stride, nmsIou) {
  const cand = [];
  const plane = h * w;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = r * w + c, s = heat[i];
      if (s < minScore || !dilatedPeak(heat, w, h, r, c)) continue;
      const bh = Math.exp(size[i]) * stride, bw = Math.exp(size[plane + i]) * stride;
      const cy = (r + offset[i] + 0.5) * stride, cx = (c + offset[plane + i] + 0.5) * stride;
      const x1 = cx - bw / 2, y1 = cy - bh / 2;
      const lms = [];
      for (let k = 0; k < 5; k++) lms.push([marks[(2 * k + 1) * plane + i] * bw + x1, marks[2 * k * plane + i] * bh + y1]);
      cand.push({ x1, y1, x2: x1 + bw, y2: y1 + bh, score: s, landmarks: lms });
    }
  }
  return nms(cand, minScore, nmsIou);
}

function boxIou(a, b) {
  const iw = Math.max(0, Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1));
  const ih = Math.max(0, Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1));
  const inter = iw * ih, union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return union > 0 ? inter / union : 0;
}

/** cv2.dnn.NMSBoxes: best first (stable), a box kept unless it overlaps a kept one by more than ``iou``. */
function nms(cands, minScore, iou) {
  const order = cands.map((c, i) => [c.score, i]).filter(([s]) => s > minScore)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const kept = [];
  for (const [, i] of order) if (kept.every((k) => boxIou(k, cands[i]) <= iou)) kept.push(cands[i]);
  return kept;
}

function rescale(f, factor, w, h) {
  return { x1: Math.max(0, f.x1 * factor), y1: Math.max(0, f.y1 * factor), x2: Math.min(w, f.x2 * factor),
    y2: Math.min(h, f.y2 * factor), score: f.score, landmarks: f.landmarks.map(([x, y]) => [x * factor, y * factor]) };
}

function toFace(r, w, h) {
  const x1 = clip(Math.floor(r.x1), 0, w), y1 = clip(Math.floor(r.y1), 0, h);
  const x2 = clip(Math.ceil(r.x2), 0, w), y2 = clip(Math.ceil(r.y2), 0, h);
  return { box: [x1, y1, x2 - x1, y2 - y1], score: r.score, landmarks: r.landmarks };
}

// ------------------------------------------------------------------ alignment (fer/faces.py)

/** fer.faces.face_transform: the 2x3 matrix from image pixel centres to 48x48 crop pixel centres. */
export function faceTransform(face, cfg) {
  const size = cfg.face_size;
  let m;
  if (face.landmarks && face.landmarks.length >= 2) m = landmarkTransform(face.landmarks, cfg.landmarks);
  else m = boxTransform(face.box, cfg.box_template);
  m = m.map((row) => row.map((v) => v * (size / cfg.face_size)));
  for (const row of m) row[2] += (row[0] + row[1]) * 0.5 - 0.5;
  return m;
}

function landmarkTransform(points, template) {
  const n = points.length, tpl = template.slice(0, n);
  const [[lx, ly], [rx, ry]] = points;
  const angle = Math.atan2(ry - ly, rx - lx), c = Math.cos(-angle), s = Math.sin(-angle);
  const p = points.map(([x, y]) => [c * x - s * y, s * x + c * y]);
  const mean = (a, k) => a.reduce((t, v) => t + v[k], 0) / n;
  const pm = [mean(p, 0), mean(p, 1)], tm = [mean(tpl, 0), mean(tpl, 1)];
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 2; k++) {
      num += (p[i][k] - pm[k]) * (tpl[i][k] - tm[k]);
      den += (p[i][k] - pm[k]) ** 2;
    }
  }
  const scale = num / Math.max(den, 1e-9);
  return [[scale * c, -scale * s, tm[0] - scale * pm[0]], [scale * s, scale * c, tm[1] - scale * pm[1]]];
}

function boxTransform([x, y, w, h], ref) {
  const rw = ref[2] - ref[0], rh = ref[3] - ref[1];
  const scale = 0.5 * (rw / Math.max(w, 1) + rh / Math.max(h, 1));
  return [[scale, 0, (ref[0] + ref[2]) / 2 - scale * (x + w / 2)], [0, scale, (ref[1] + ref[3]) / 2 - scale * (y + h / 2)]];
}

function uprightPatchMatrix(face, size) {
  const pts = face.landmarks;
  const angle = Math.atan2(pts[1][1] - pts[0][1], pts[1][0] - pts[0][0]);
  const cx = pts.reduce((t, p) => t + p[0], 0) / pts.length - 0.5, cy = pts.reduce((t, p) => t + p[1], 0) / pts.length - 0.5;
  const scale = 0.5 * size / Math.max(face.box[2], 1);
  const c = Math.cos(-angle) * scale, s = Math.sin(-angle) * scale, centre = (size - 1) / 2;
  return [[c, -s, centre - (c * cx - s * cy)], [s, c, centre - (s * cx + c * cy)]];
}

// ------------------------------------------------------------------ prior correction (fer/prior.py)

/** Probabilities with the prior divided out to the power tau, renormalised. */
export function adjust(probs, prior, tau) {
  if (!prior || tau === 0) return probs.slice();
  const logits = probs.map((p, i) => Math.log(clip(p, 1e-12, 1)) - tau * Math.log(prior[i]));
  const top = Math.max(...logits), e = logits.map((v) => Math.exp(v - top)), sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

const argmax = (a) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

// ------------------------------------------------------------------ smoothing (fer.inference.FaceTracker)

export class FaceTracker {
  constructor(cfg) { this.cfg = cfg; this.reset(); }

  reset() { this.tracks = new Map(); this.nextId = 1; }

  update(results) {
    const pairs = this.match(results.map((r) => r.box));
    const out = results.map((r, i) => this.continue(r, pairs.get(i)));
    const seen = new Set([...pairs.values(), ...out.map((r) => r.track_id)]);
    for (const [id, t] of this.tracks) {
      if (seen.has(id)) continue;
      t.missed += 1;
      if (t.missed > this.cfg.max_missed) this.tracks.delete(id);
    }
    return out;
  }

  match(boxes) {
    const ids = [...this.tracks.keys()], pairs = new Map();
    if (!boxes.length || !ids.length) return pairs;
    const cells = [];
    boxes.forEach((b, i) => ids.forEach((id, j) => cells.push([iouXywh(b, this.tracks.get(id).box), i, j])));
    cells.sort((a, b) => b[0] - a[0] || (a[1] * ids.length + a[2]) - (b[1] * ids.length + b[2]));
    const used = new Set();
    for (const [v, i, j] of cells) {
      if (v < this.cfg.iou_threshold) break;
      if (!pairs.has(i) && !used.has(ids[j])) { pairs.set(i, ids[j]); used.add(ids[j]); }
    }
    return pairs;
  }

  continue(result, trackId) {
    let probs = result.probs;
    if (trackId === undefined) { trackId = this.nextId; this.nextId += 1; }
    else {
      const a = this.cfg.alpha, old = this.tracks.get(trackId).probs;
      probs = probs.map((p, k) => a * p + (1 - a) * old[k]);
    }
    this.tracks.set(trackId, { box: result.box, probs, missed: 0 });
    const best = argmax(probs);
    return { ...result, track_id: trackId, probs, emotion: this.cfg.labels[best], score: probs[best] };
  }
}

export function iouXywh(a, b) {
  const iw = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih, union = a[2] * a[3] + b[2] * b[3] - inter;
  return union > 0 ? inter / union : 0;
}

// ------------------------------------------------------------------ the stream (fer/stream.py)

/** The points tracked for a face: its landmarks, or a 3x3 grid in its box without them. */
function facePoints(face) {
  if (face.landmarks) return face.landmarks;
  const [x, y, w, h] = face.box, out = [];
  for (const gy of [0.3, 0.5, 0.7]) for (const gx of [0.3, 0.5, 0.7]) out.push([x + gx * w, y + gy * h]);
  return out;
}

/** ``face`` carried along by its points' motion (a similarity fit), or null if the fit is implausible. */
function movedFace(face, pts, w, h) {
  const m = similarity(facePoints(face), pts);
  if (!m) return null;
  const scale = Math.hypot(m[0][0], m[1][0]);
  if (scale < 0.8 || scale > 1.25) return null;
  const [x, y, bw, bh] = face.box, cx0 = x + bw / 2, cy0 = y + bh / 2;
  const cx = m[0][0] * cx0 + m[0][1] * cy0 + m[0][2], cy = m[1][0] * cx0 + m[1][1] * cy0 + m[1][2];
  const nw = bw * scale, nh = bh * scale;
  const x1 = clip(pyRound(cx - nw / 2), 0, w), y1 = clip(pyRound(cy - nh / 2), 0, h);
  const x2 = clip(pyRound(cx + nw / 2), 0, w), y2 = clip(pyRound(cy + nh / 2), 0, h);
  if (x2 - x1 < 2 || y2 - y1 < 2) return null;
  return { box: [x1, y1, x2 - x1, y2 - y1], score: face.score, landmarks: face.landmarks ? pts : null };
}

/**
 * One camera's live state, as fer.stream.LiveStream: the detector every ``detect_every`` frames, the faces'
 * landmarks followed by optical flow in between (a lost face makes the detector run at once), the refined
 * second look only for faces whose eyes moved away from the tracked ones, and all faces classified in one
 * batch. ``engine`` runs the two ONNX graphs:
 *   engine.detect(blob Float32Array, n, h, w) -> {heat, size, offset, marks} (flat, n images)
 *   engine.classify(x Float32Array (n*48*48), n) -> Float32Array (n*7)
 * Frames are RGBA pixels; results are faces left to right with box, landmarks, probs, emotion, score and
 * crop (the 48x48 gray face the model saw).
 */
export class LiveStream {
  constructor(cfg, engine) {
    this.cfg = cfg; this.engine = engine; this.minScore = cfg.min_score; this.reset();
  }

  reset() {
    this.tracks = []; this.prevGray = null; this.prevPyr = null; this.sinceDetect = this.cfg.detect_every;
    this.nextId = 1;
    this.stats = { frames: 0, detections: 0, redetections: 0, fallbacks: 0, refined: 0, refine_skipped: 0, faces: 0,
      ms: { gray: 0, track: 0, detect: 0, classify: 0 } };  // time spent per step, summed over frames
  }

  async process(rgba, width, height) {
    let t0 = performance.now();
    const gray = grayOf(rgba, width, height);
    this.stats.ms.gray += performance.now() - t0;
    let rgbImage = null;
    const rgb = () => (rgbImage = rgbImage || rgbOf(rgba, width, height));  // only detection frames need colour
    if (this.prevGray && (this.prevGray.width !== width || this.prevGray.height !== height)) {
      this.prevGray = null; this.prevPyr = null; this.tracks = []; this.sinceDetect = this.cfg.detect_every;
    }
    this.stats.frames += 1;
    this.curPyr = null;
    let tracked;
    if (this.sinceDetect >= this.cfg.detect_every) tracked = null;
    else if (this.tracks.length) tracked = this.track(gray);  // null when a face was lost
    else { tracked = []; this.sinceDetect += 1; }  // no face lately: the detector looks every Nth frame only
    t0 = this.lap("track", t0);
    if (tracked === null) tracked = await this.detect(rgb(), gray);
    t0 = this.lap("detect", t0);
    this.tracks = tracked;
    this.prevGray = gray; this.prevPyr = this.curPyr;
    if (!tracked.length) return [];
    const faces = tracked.map((t) => t.face);
    const { probs, crops } = await this.classify(gray, faces);
    this.lap("classify", t0);
    this.stats.faces += faces.length;
    return tracked.map((t, i) => {
      const best = argmax(probs[i]);
      return { box: t.face.box, landmarks: t.face.landmarks, detector_score: t.face.score, probs: probs[i],
        emotion: this.cfg.labels[best], score: probs[i][best], track_id: t.id, crop: crops[i] };
    }).sort((a, b) => a.box[0] - b.box[0] || a.box[1] - b.box[1]);
  }

  lap(step, t0) {
    const now = performance.now();
    this.stats.ms[step] += now - t0;
    return now;
  }

  /** 48x48 crops of ``faces`` from the gray frame, classified in one batch, prior-corrected. */
  async classify(gray, faces) {
    const s = this.cfg.face_size, x = new Float32Array(faces.length * s * s);
    const crops = faces.map((f) => warp(gray, faceTransform(f, this.cfg), s, s).data);
    crops.forEach((c, i) => x.set(c, i * s * s));
    const out = await this.engine.classify(x, faces.length);
    const k = this.cfg.labels.length;
    const probs = faces.map((_, i) => adjust(Array.from(out.subarray(i * k, (i + 1) * k)), this.cfg.prior, this.cfg.tau));
    return { probs, crops };
  }

  // ---------------------------------------------------------------- tracking

  /** Each track's points moved into ``gray`` (null where the tracker lost confidence): forward and back. */
  flow(gray) {
    if (!this.prevGray || !this.tracks.length) return this.tracks.map(() => null);
    const levels = this.cfg.flow_levels, side = this.cfg.flow_window;
    if (!this.prevPyr) this.prevPyr = pyramid(this.prevGray, levels);
    if (!this.curPyr) this.curPyr = pyramid(gray, levels);
    return this.tracks.map((t) => {
      const p0 = facePoints(t.face);
      const p1 = track(this.prevPyr, this.curPyr, p0, side);
      const back = track(this.curPyr, this.prevPyr, p1.map(([x, y]) => [x, y]), side);
      const limit = this.cfg.max_flow_error * Math.max(t.face.box[2], 1);
      const good = p0.every((p, i) => p1[i][2] && back[i][2] && Math.hypot(back[i][0] - p[0], back[i][1] - p[1]) <= limit);
      return good ? p1.map(([x, y]) => [x, y]) : null;
    });
  }

  /** Every face followed into this frame, or null when one was lost (then the detector runs). */
  track(gray) {
    const moved = this.flow(gray), out = [];
    for (let i = 0; i < this.tracks.length; i++) {
      const t = this.tracks[i];
      const face = moved[i] && movedFace(t.face, moved[i], gray.width, gray.height);
      if (!face) { this.stats.redetections += 1; return null; }
      out.push({ face, id: t.id, refined: t.refined });
    }
    this.sinceDetect += 1;
    return out;
  }

  // ---------------------------------------------------------------- detection

  async runDetector(rgb, size, minScore) {
    const input = detectorInput(rgb, size);
    const o = await this.engine.detect(input.blob, 1, input.height, input.width);
    const found = decodeCenterface(o.heat, o.size, o.offset, o.marks, input.height / this.cfg.stride,
      input.width / this.cfg.stride, minScore, this.cfg.stride, this.cfg.nms_iou);
    return found.map((f) => rescale(f, 1 / input.scale, rgb.width, rgb.height));
  }

  /** fer.faces.detect_in_bgr without refinement: a second look with a grey border when nothing is found. */
  async detectAt(rgb, size) {
    let raw = await this.runDetector(rgb, size, this.minScore);
    if (!raw.length) {
      const py = Math.floor(rgb.height / 3), px = Math.floor(rgb.width / 3);
      const padded = padImage(rgb, py, py, px, px, 128);
      raw = (await this.runDetector(padded, size, this.minScore)).map((r) => ({
        x1: r.x1 - px, y1: r.y1 - py, x2: r.x2 - px, y2: r.y2 - py, score: r.score,
        landmarks: r.landmarks.map(([x, y]) => [x - px, y - py]) }));
    }
    return raw.map((r) => toFace(r, rgb.width, rgb.height)).filter((f) => f.box[2] > 1 && f.box[3] > 1)
      .sort((a, b) => a.box[0] - b.box[0] || a.box[1] - b.box[1]);
  }

  async detect(rgb, gray) {
    this.stats.detections += 1;
    this.sinceDetect = 1;
    let faces = await this.detectAt(rgb, this.cfg.detect_size);
    if (!faces.length && this.cfg.input_size > this.cfg.detect_size) {
      this.stats.fallbacks += 1;
      faces = await this.detectAt(rgb, this.cfg.input_size);
    }
    if (!faces.length) return [];
    const predicted = this.flow(gray);
    const out = faces.map((f) => this.match(f, predicted) || { face: f, id: this.newId(), refined: false });
    return this.refine(rgb, out);
  }

  /** The track this detected face continues (same id; tracked landmarks when its eyes are stable). */
  match(face, predicted) {
    let best = null, bestIou = 0.3;
    this.tracks.forEach((t, i) => {
      const v = iouXywh(face.box, t.face.box);
      if (v >= bestIou) { best = [t, predicted[i]]; bestIou = v; }
    });
    if (!best) return null;
    const [t, pts] = best, limit = this.cfg.stable_eyes * Math.max(face.box[2], 1);
    const stable = pts && face.landmarks && t.face.landmarks && t.refined && [0, 1].every((k) =>
      Math.abs(face.landmarks[k][0] - pts[k][0]) <= limit && Math.abs(face.landmarks[k][1] - pts[k][1]) <= limit);
    if (stable) {
      this.stats.refine_skipped += 1;
      return { face: { ...face, landmarks: pts }, id: t.id, refined: true };
    }
    return { face, id: t.id, refined: false };
  }

  /** The second, upright look (one batch) for the faces whose landmarks were not kept from tracking. */
  async refine(rgb, tracks) {
    const todo = tracks.filter((t) => !t.refined && t.face.landmarks);
    if (!this.cfg.refine || !todo.length) return tracks;
    const size = this.cfg.refine_size, plane = size * size, mats = todo.map((t) => uprightPatchMatrix(t.face, size));
    const blob = new Float32Array(todo.length * 3 * plane);
    mats.forEach((m, k) => toBlob(warp(rgb, m, size, size), blob, k * 3 * plane));
    const o = await this.engine.detect(blob, todo.length, size, size);
    const g = size / this.cfg.stride, gp = g * g;
    todo.forEach((t, k) => {
      const found = decodeCenterface(o.heat.subarray(k * gp, (k + 1) * gp), o.size.subarray(2 * k * gp, 2 * (k + 1) * gp),
        o.offset.subarray(2 * k * gp, 2 * (k + 1) * gp), o.marks.subarray(10 * k * gp, 10 * (k + 1) * gp), g, g,
        this.cfg.refine_min_score, this.cfg.stride, this.cfg.nms_iou);
      if (found.length) {
        const dist = (r) => Math.hypot((r.x1 + r.x2 - size) / 2, (r.y1 + r.y2 - size) / 2);
        const best = found.reduce((a, b) => (dist(b) < dist(a) ? b : a));
        const back = invertAffine(mats[k]);
        t.face = { ...t.face, landmarks: best.landmarks.map(([x, y]) => [
          back[0][0] * (x - 0.5) + back[0][1] * (y - 0.5) + back[0][2] + 0.5,
          back[1][0] * (x - 0.5) + back[1][1] * (y - 0.5) + back[1][2] + 0.5]) };
      }
      t.refined = true;
    });
    this.stats.refined += todo.length;
    return tracks;
  }

  newId() { this.nextId += 1; return this.nextId - 1; }
}
