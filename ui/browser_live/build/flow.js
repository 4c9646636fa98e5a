// Pyramidal Lucas-Kanade optical flow (as cv2.calcOpticalFlowPyrLK: Gaussian pyramid by pyrDown, Scharr
// gradients, a square window, at most 30 iterations or a step under 0.01 px, the minimum-eigenvalue test)
// and the least-squares similarity fit that carries a face's box along (cv2.estimateAffinePartial2D on
// points that all agree). Images are {data: Uint8Array, width, height} gray.

function reflect101(i, n) {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/** cv2.pyrDown: 5x5 Gaussian, every other pixel, size ((w + 1) / 2, (h + 1) / 2), reflected borders. */
export function pyrDown(img) {
  const { data, width: w, height: h } = img;
  const nw = (w + 1) >> 1, nh = (h + 1) >> 1;
  const rows = new Float32Array(nw * h);
  for (let y = 0; y < h; y++) {
    const r = y * w, o = y * nw;
    for (let x = 0; x < nw; x++) {
      const c = 2 * x;
      rows[o + x] = c >= 2 && c + 2 < w
        ? data[r + c - 2] + 4 * data[r + c - 1] + 6 * data[r + c] + 4 * data[r + c + 1] + data[r + c + 2]
        : data[r + reflect101(c - 2, w)] + 4 * data[r + reflect101(c - 1, w)] + 6 * data[r + c]
          + 4 * data[r + reflect101(c + 1, w)] + data[r + reflect101(c + 2, w)];
    }
  }
  const out = new Uint8Array(nw * nh);
  for (let y = 0; y < nh; y++) {
    const c = 2 * y, o = y * nw;
    const r0 = reflect101(c - 2, h) * nw, r1 = reflect101(c - 1, h) * nw, r2 = c * nw;
    const r3 = reflect101(c + 1, h) * nw, r4 = reflect101(c + 2, h) * nw;
    for (let x = 0; x < nw; x++) {
      out[o + x] = Math.round((rows[r0 + x] + 4 * rows[r1 + x] + 6 * rows[r2 + x] + 4 * rows[r3 + x] + rows[r4 + x]) / 256);
    }
  }
  return { data: out, width: nw, height: nh };
}

export function pyramid(img, levels) {
  const out = [img];
  for (let l = 0; l < levels; l++) out.push(pyrDown(out[l]));
  return out;
}

function px(img, x, y) {
  const { width: w, height: h } = img;
  if (x >= 0 && y >= 0 && x < w && y < h) return img.data[y * w + x];
  return img.data[reflect101(y, h) * w + reflect101(x, w)];
}

/** The window's intensities and gradients (Scharr / 32: per pixel) around its top-left corner (x0, y0),
 * bilinear between pixels: the pixels (and their gradients) are read once into a small patch first. */
function windowAt(img, x0, y0, side, withGrad) {
  const ix = Math.floor(x0), iy = Math.floor(y0), ax = x0 - ix, ay = y0 - iy;
  const w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
  const ps = side + 3, patch = new Float64Array(ps * ps);  // pixels from (ix - 1, iy - 1), a border for Scharr
  for (let y = 0; y < ps; y++) for (let x = 0; x < ps; x++) patch[y * ps + x] = px(img, ix - 1 + x, iy - 1 + y);
  const gs = side + 1, n = side * side;
  const I = new Float64Array(n), gx = withGrad ? new Float64Array(n) : null, gy = withGrad ? new Float64Array(n) : null;
  let dx = null, dy = null;
  if (withGrad) {
    dx = new Float64Array(gs * gs); dy = new Float64Array(gs * gs);
    for (let y = 0; y < gs; y++) {
      for (let x = 0; x < gs; x++) {
        const c = (y + 1) * ps + x + 1;
        const a = patch[c - ps - 1], b = patch[c - ps], cc = patch[c - ps + 1], d = patch[c - 1], f = patch[c + 1];
        const g = patch[c + ps - 1], h = patch[c + ps], i = patch[c + ps + 1];
        dx[y * gs + x] = (3 * (cc + i - a - g) + 10 * (f - d)) / 32;
        dy[y * gs + x] = (3 * (g + i - a - cc) + 10 * (h - b)) / 32;
      }
    }
  }
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const k = y * side + x, p = (y + 1) * ps + x + 1;
      I[k] = w00 * patch[p] + w01 * patch[p + 1] + w10 * patch[p + ps] + w11 * patch[p + ps + 1];
      if (withGrad) {
        const q = y * gs + x;
        gx[k] = w00 * dx[q] + w01 * dx[q + 1] + w10 * dx[q + gs] + w11 * dx[q + gs + 1];
        gy[k] = w00 * dy[q] + w01 * dy[q + 1] + w10 * dy[q + gs] + w11 * dy[q + gs + 1];
      }
    }
  }
  return { I, gx, gy };
}

/** One point through the pyramids: [x, y, ok]. */
function trackPoint(prev, next, pt, side, maxIter = 30, eps = 0.01, minEig = 1e-4) {
  const half = (side - 1) / 2, levels = prev.length - 1;
  let nx = 0, ny = 0, ok = true;
  for (let level = levels; level >= 0; level--) {
    const s = 2 ** level, P = prev[level], N = next[level];
    const px0 = pt[0] / s - half, py0 = pt[1] / s - half;
    if (level === levels) { nx = pt[0] / s; ny = pt[1] / s; } else { nx *= 2; ny *= 2; }
    if (px0 < -side || px0 >= P.width || py0 < -side || py0 >= P.height) { if (level === 0) ok = false; continue; }
    const { I, gx, gy } = windowAt(P, px0, py0, side, true);
    let a11 = 0, a12 = 0, a22 = 0;
    for (let k = 0; k < I.length; k++) { a11 += gx[k] * gx[k]; a12 += gx[k] * gy[k]; a22 += gy[k] * gy[k]; }
    const det = a11 * a22 - a12 * a12;
    // OpenCV's scale: Scharr gradients unnormalised (x32) and products divided by 2^20
    const eig = (a22 + a11 - Math.sqrt((a11 - a22) ** 2 + 4 * a12 * a12)) / (2 * I.length * 1024);
    if (eig < minEig || det < 0.125) { if (level === 0) ok = false; continue; }
    let prevDx = 0, prevDy = 0;
    nx -= half; ny -= half;
    for (let j = 0; j < maxIter; j++) {
      if (nx < -side || nx >= N.width || ny < -side || ny >= N.height) { if (level === 0) ok = false; break; }
      const J = windowAt(N, nx, ny, side, false).I;
      let b1 = 0, b2 = 0;
      for (let k = 0; k < I.length; k++) { const diff = J[k] - I[k]; b1 += diff * gx[k]; b2 += diff * gy[k]; }
      const dx = (a12 * b2 - a22 * b1) / det, dy = (a12 * b1 - a11 * b2) / det;
      nx += dx; ny += dy;
      if (dx * dx + dy * dy <= eps * eps) break;
      if (j > 0 && Math.abs(dx + prevDx) < 0.01 && Math.abs(dy + prevDy) < 0.01) { nx -= dx * 0.5; ny -= dy * 0.5; break; }
      prevDx = dx; prevDy = dy;
    }
    nx += half; ny += half;
  }
  return [nx, ny, ok];
}

/** Points of the ``prev`` pyramid followed into ``next``: [[x, y, ok], ...]. */
export function track(prev, next, points, side) {
  return points.map((p) => trackPoint(prev, next, p, side));
}

/** Least-squares similarity (rotation, one scale, shift) taking ``src`` points to ``dst``: a 2x3 matrix. */
export function similarity(src, dst) {
  const n = src.length;
  const mean = (a, k) => a.reduce((t, v) => t + v[k], 0) / n;
  const sx = mean(src, 0), sy = mean(src, 1), dx = mean(dst, 0), dy = mean(dst, 1);
  let a = 0, b = 0, den = 0;
  for (let i = 0; i < n; i++) {
    const x = src[i][0] - sx, y = src[i][1] - sy, u = dst[i][0] - dx, v = dst[i][1] - dy;
    a += x * u + y * v; b += x * v - y * u; den += x * x + y * y;
  }
  if (den < 1e-9) return null;
  a /= den; b /= den;
  return [[a, -b, dx - (a * sx - b * sy)], [b, a, dy - (b * sx + a * sy)]];
}
