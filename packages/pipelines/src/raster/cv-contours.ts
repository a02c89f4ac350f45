/**
 * Leffa's refine_mask on a mask without holes, as OpenCV 4.x computes it: cv2.findContours (Suzuki border
 * following, 8-connected) with CHAIN_APPROX_TC89_L1 (Teh-Chin dominant points on the chain code), the contour of
 * largest |contourArea|, and cv2.drawContours(thickness=-1) of that polygon alone (its edges drawn as 8-connected
 * lines, then the scan-line fill in 16.16 fixed point). The approximated polygon can cut a corner off the component
 * or add a sliver to it, which is why this follows OpenCV step by step rather than keeping the largest component.
 */

/** Chain-code directions: 0 = +x, then counter-clockwise in image coordinates (y down). */
const DX = [1, 1, 0, -1, -1, -1, 0, 1];
const DY = [0, -1, -1, -1, 0, 1, 1, 1];

interface Chain {
  x: number;
  y: number;
  codes: number[];
}

/** Outer border of the 8-connected component whose first pixel in raster order is (x, y), as a chain code. */
function traceOuter(img: Uint8Array, stride: number, x: number, y: number): Chain {
  // img is padded by one pixel on every side: neighbours are always readable.
  const delta = (s: number) => DY[s & 7]! * stride + DX[s & 7]!;
  const i0 = (y + 1) * stride + (x + 1);
  const codes: number[] = [];
  let s = 4;
  let i1 = 0;
  do {
    s = (s - 1) & 7;
    i1 = i0 + delta(s);
  } while (img[i1] === 0 && s !== 4);
  if (s === 4) return { x, y, codes }; // a single pixel
  let i3 = i0;
  for (;;) {
    let i4 = i3;
    while (s < 15) {
      i4 = i3 + delta(++s);
      if (img[i4] !== 0) break;
    }
    s &= 7;
    codes.push(s);
    if (i4 === i0 && i3 === i1) break;
    i3 = i4;
    s = (s + 4) & 7;
  }
  return { x, y, codes };
}

const ABS_DIFF = [1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1];
const f32 = new Float32Array(1);

/** OpenCV's Teh-Chin approximation of a closed chain (the L1 variant), its linked-list passes kept as they are. */
function approxTC89L1(chain: Chain): [number, number][] {
  const len = chain.codes.length;
  if (len === 0) return [[chain.x, chain.y]];
  // Nodes 0..len-1 are the chain's points, len a spare copy slot, len + 1 the list head.
  const HEAD = len + 1;
  const px = new Int32Array(len + 2);
  const py = new Int32Array(len + 2);
  const sv = new Int32Array(len + 2);
  const kv = new Int32Array(len + 2);
  const next = new Int32Array(len + 2).fill(-1);
  let x = chain.x;
  let y = chain.y;
  let cur = HEAD;
  // Pass 0: the points and their 1-curvature; straight points are left out of the list.
  for (let i = 0; i < len; i++) {
    const code = chain.codes[i]!;
    const prev = chain.codes[i === 0 ? len - 1 : i - 1]!;
    sv[i] = ABS_DIFF[code - prev + 7]!;
    px[i] = x;
    py[i] = y;
    if (sv[i] !== 0) {
      next[cur] = i;
      cur = i;
    }
    x += DX[code]!;
    y += DY[code]!;
  }
  next[cur] = -1;
  const wrap = (i: number) => (i < 0 ? i + len : i >= len ? i - len : i);

  // Pass 1: the support region of every listed point.
  for (cur = next[HEAD]!; cur !== -1; cur = next[cur]!) {
    const i = cur;
    let l = 0;
    let dNum = 0;
    let k = 1;
    for (; ; k++) {
      const a = wrap(i - k);
      const b = wrap(i + k);
      const dx = px[b]! - px[a]!;
      const dy = py[b]! - py[a]!;
      const lk = dx * dx + dy * dy;
      const dkNum = (px[i]! - px[a]!) * dy - (py[i]! - py[a]!) * dx;
      f32[0] = dNum * lk - dkNum * l;
      const d = f32[0]!;
      // OpenCV tests the sign of the float's bit pattern as an int: -0 counts as negative.
      const neg = d < 0 || Object.is(d, -0);
      if (k > 1 && (l >= lk || (dNum > 0 && (neg || d === 0)) || (dNum < 0 && !neg))) break;
      dNum = dkNum;
      l = lk;
    }
    kv[cur] = k - 1;
  }

  // Pass 2: non-maxima suppression (a cleared point counts as 0 for the points after it).
  let prevCur = HEAD;
  for (cur = next[HEAD]!; cur !== -1; cur = next[cur]!) {
    const k2 = kv[cur]! >> 1;
    const s = sv[cur]!;
    let j = 1;
    for (; j <= k2; j++) {
      if (sv[wrap(cur - j)]! > s) break;
      if (sv[wrap(cur + j)]! > s) break;
    }
    if (j <= k2) {
      next[prevCur] = next[cur]!;
      sv[cur] = 0;
    } else prevCur = cur;
  }

  // Pass 3: points with a one-pixel support region that do not dominate a neighbour.
  prevCur = HEAD;
  for (cur = next[HEAD]!; cur !== -1; cur = next[cur]!) {
    if (kv[cur] === 1) {
      const s = sv[cur]!;
      if (s <= sv[wrap(cur - 1)]! || s <= sv[wrap(cur + 1)]!) {
        next[prevCur] = next[cur]!;
        sv[cur] = 0;
      } else prevCur = cur;
    } else prevCur = cur;
  }

  // Pass 4 (L1): a run of surviving points across the chain's start is cut to its two ends ...
  let allSurvived = false;
  if (sv[0] !== 0 && sv[len - 1] !== 0) {
    let i1 = 1;
    for (; i1 < len && sv[i1] !== 0; i1++) sv[i1 - 1] = 0;
    if (i1 === len) allSurvived = true;
    else {
      i1--;
      let i2 = len - 2;
      for (; i2 > 0 && sv[i2] !== 0; i2--) {
        next[i2] = -1;
        sv[i2 + 1] = 0;
      }
      i2++;
      if (i1 === 0 && i2 === len - 1) {
        i1 = next[0]!;
        px[len] = px[0]!;
        py[len] = py[0]!;
        sv[len] = sv[0]!;
        kv[len] = kv[0]!;
        next[len] = -1;
        next[len - 1] = len;
      }
      next[HEAD] = i1;
    }
  }
  // ... and every run of adjacent survivors keeps only its ends (of a pair, the stronger point).
  if (!allSurvived) {
    let first = HEAD;
    prevCur = HEAD;
    let count = 1;
    for (cur = next[HEAD]!; cur !== -1; cur = next[cur]!) {
      if (next[cur] === -1 || next[cur]! - cur !== 1) {
        if (count >= 2) {
          if (count === 2) {
            const s1 = sv[prevCur]!;
            const s2 = sv[cur]!;
            if (s1 > s2 || (s1 === s2 && kv[prevCur]! <= kv[cur]!)) next[prevCur] = next[cur]!;
            else next[first] = cur;
          } else next[next[first]!] = cur;
        }
        first = cur;
        count = 1;
      } else count++;
      prevCur = cur;
    }
  }
  const out: [number, number][] = [];
  for (cur = next[HEAD]!; cur !== -1; cur = next[cur]!) out.push([px[cur]!, py[cur]!]);
  return out;
}

/** cv2.contourArea (shoelace over the polygon, closed). */
function polygonArea(pts: [number, number][]): number {
  if (pts.length === 0) return 0;
  let a = 0;
  let prev = pts[pts.length - 1]!;
  for (const p of pts) {
    a += prev[0] * p[1] - prev[1] * p[0];
    prev = p;
  }
  return Math.abs(a * 0.5);
}

/** OpenCV's 8-connected line (LineIterator, left to right), inside the image. */
function line8(out: Uint8Array, width: number, x0: number, y0: number, x1: number, y1: number): void {
  if (x1 < x0) [x0, y0, x1, y1] = [x1, y1, x0, y0];
  let dx = x1 - x0;
  let dy = y1 - y0;
  const ystep = dy < 0 ? -width : width;
  dy = Math.abs(dy);
  let major = 1;
  let minor = ystep;
  if (dy > dx) {
    [dx, dy] = [dy, dx];
    [major, minor] = [minor, major];
  }
  let err = dx - 2 * dy;
  let p = y0 * width + x0;
  for (let i = 0; i <= dx; i++) {
    out[p] = 255;
    const step = err < 0;
    err += -2 * dy + (step ? 2 * dx : 0);
    p += major + (step ? minor : 0);
  }
}

const SHIFT = 65536;

interface PolyEdge {
  y0: number;
  y1: number;
  x: number;
  dx: number;
  next: PolyEdge | null;
}

/** cv2.drawContours(img, [pts], 0, 255, -1): edges drawn as lines, then FillEdgeCollection's scan-line fill. */
function fillContour(out: Uint8Array, width: number, height: number, pts: [number, number][]): void {
  if (pts.length === 0) return;
  const edges: PolyEdge[] = [];
  let p0 = pts[pts.length - 1]!;
  for (const p1 of pts) {
    line8(out, width, p0[0], p0[1], p1[0], p1[1]);
    if (p0[1] !== p1[1]) {
      const [top, bottom] = p0[1] < p1[1] ? [p0, p1] : [p1, p0];
      // (x1 - x0) << 16 / (y1 - y0), truncated towards zero as C's int64 division.
      const dx = Math.trunc(((p1[0] - p0[0]) * SHIFT) / (p1[1] - p0[1]));
      edges.push({ y0: top[1], y1: bottom[1], x: top[0] * SHIFT, dx, next: null });
    }
    p0 = p1;
  }
  if (edges.length < 2) return;
  let yMax = -Infinity;
  for (const e of edges) yMax = Math.max(yMax, e.y1);
  edges.sort((a, b) => (a.y0 !== b.y0 ? a.y0 - b.y0 : a.x !== b.x ? a.x - b.x : a.dx - b.dx));
  const total = edges.length;
  const sentinel: PolyEdge = { y0: Number.MAX_SAFE_INTEGER, y1: 0, x: 0, dx: 0, next: null };
  edges.push(sentinel);
  const head: PolyEdge = { y0: 0, y1: 0, x: 0, dx: 0, next: null };
  let i = 0;
  let e = edges[0]!;
  yMax = Math.min(yMax, height);
  for (let y = e.y0; y < yMax; y++) {
    let prelast = head;
    let last = head.next;
    let draw = false;
    while (last || e.y0 === y) {
      if (last && last.y1 === y) {
        // the edge ends on this row
        prelast.next = last.next;
        last = last.next;
        continue;
      }
      const keep = prelast;
      if (last && (e.y0 > y || last.x < e.x)) {
        prelast = last;
        last = last.next;
      } else if (i < total) {
        prelast.next = e;
        e.next = last;
        prelast = e;
        e = edges[++i]!;
      } else break;
      if (draw) {
        if (y >= 0) {
          const [l, r] = keep.x > prelast.x ? [prelast, keep] : [keep, prelast];
          let x1 = Math.floor((l.x + SHIFT - 1) / SHIFT);
          let x2 = Math.floor(r.x / SHIFT);
          if (x1 < width && x2 >= 0) {
            x1 = Math.max(0, x1);
            x2 = Math.min(width - 1, x2);
            if (x1 <= x2) out.fill(255, y * width + x1, y * width + x2 + 1);
          }
        }
        keep.x += keep.dx;
        prelast.x += prelast.dx;
      }
      draw = !draw;
    }
    // bubble sort of the active list by x
    let sorted: PolyEdge | null = null;
    let swapped = false;
    do {
      let pl = head;
      let cur = head.next;
      while (cur !== sorted && cur!.next !== null) {
        const te = cur!.next;
        if (cur!.x > te.x) {
          pl.next = te;
          cur!.next = te.next;
          te.next = cur;
          pl = te;
          swapped = true;
        } else {
          pl = cur!;
          cur = te;
        }
      }
      sorted = pl === head ? null : pl;
      if (pl === head) break;
    } while (swapped && sorted !== head.next);
  }
}

/**
 * refine_mask: the filled polygon of the largest (approximated) outer contour of a 0 / non-zero mask without
 * holes, as 0 / 255. Equal areas go to the contour found last in raster order (OpenCV lists them backwards).
 */
export function largestContourFill(mask: Uint8Array, width: number, height: number): Uint8Array {
  const stride = width + 2;
  const padded = new Uint8Array(stride * (height + 2));
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) padded[(y + 1) * stride + x + 1] = mask[y * width + x] ? 1 : 0;
  // Each 8-connected component's outer border starts at its first pixel in raster order.
  const seen = new Uint8Array(width * height);
  let best: [number, number][] | null = null;
  let bestArea = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const idx = y * width + x;
      if (!mask[idx] || seen[idx]) continue;
      const stack = [idx];
      seen[idx] = 1;
      while (stack.length) {
        const j = stack.pop()!;
        const jx = j % width;
        const jy = (j - jx) / width;
        for (let d = 0; d < 8; d++) {
          const nx = jx + DX[d]!;
          const ny = jy + DY[d]!;
          if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
          const n = ny * width + nx;
          if (mask[n] && !seen[n]) {
            seen[n] = 1;
            stack.push(n);
          }
        }
      }
      const poly = approxTC89L1(traceOuter(padded, stride, x, y));
      const area = polygonArea(poly);
      if (area >= bestArea) {
        bestArea = area;
        best = poly;
      }
    }
  }
  const out = new Uint8Array(width * height);
  if (best) fillContour(out, width, height, best);
  return out;
}
