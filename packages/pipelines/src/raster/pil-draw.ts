/**
 * Pillow's (9.x) ImageDraw rasterisation on an 8-bit single-channel canvas, pixel for pixel: wide lines (the
 * four-edge polygon of libImaging's ImagingDrawWideLine and its scan-line filler), ellipses and filled pie slices
 * (the integer ellipse walker and its half-plane clipping tree) and `line(..., joint='curve')`. Leffa draws its
 * arm masks with these, so the agnostic mask depends on their exact pixel rules. Float steps that libImaging
 * does in single precision are rounded with Math.fround.
 */

export interface Canvas {
  width: number;
  height: number;
  /** row-major, one byte per pixel */
  data: Uint8Array;
}

export function newCanvas(width: number, height: number): Canvas {
  return { width, height, data: new Uint8Array(width * height) };
}

const f32 = Math.fround;

/** libImaging's ROUND_UP / ROUND_DOWN (away from / towards zero at .5) on a float (single-precision add). */
const roundUpF = (v: number) => (v >= 0 ? Math.floor(f32(v + 0.5)) : -Math.floor(f32(Math.abs(v) + 0.5)));
const roundDownF = (v: number) => (v >= 0 ? Math.ceil(f32(v - 0.5)) : -Math.ceil(f32(Math.abs(v) - 0.5)));
/** the same macros on a double */
const roundUpD = (v: number) => (v >= 0 ? Math.floor(v + 0.5) : -Math.floor(Math.abs(v) + 0.5));
const roundDownD = (v: number) => (v >= 0 ? Math.ceil(v - 0.5) : -Math.ceil(Math.abs(v) - 0.5));
/** C's lround (half away from zero) */
const lround = (v: number) => Math.sign(v) * Math.round(Math.abs(v));
/** C's (int) cast of a double: truncation towards zero */
export const cInt = (v: number) => Math.trunc(v);

function hline(c: Canvas, x0: number, y: number, x1: number, ink: number): void {
  if (y < 0 || y >= c.height) return;
  if (x0 > x1) [x0, x1] = [x1, x0];
  if (x0 < 0) x0 = 0;
  else if (x0 >= c.width) return;
  if (x1 < 0) return;
  if (x1 >= c.width) x1 = c.width - 1;
  if (x0 <= x1) c.data.fill(ink, y * c.width + x0, y * c.width + x1 + 1);
}

function point(c: Canvas, x: number, y: number, ink: number): void {
  if (x >= 0 && x < c.width && y >= 0 && y < c.height) c.data[y * c.width + x] = ink;
}

interface Edge {
  x0: number;
  y0: number;
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  /** single precision */
  dx: number;
}

function edge(x0: number, y0: number, x1: number, y1: number): Edge {
  return {
    x0,
    y0,
    xmin: Math.min(x0, x1),
    xmax: Math.max(x0, x1),
    ymin: Math.min(y0, y1),
    ymax: Math.max(y0, y1),
    dx: y0 === y1 ? 0 : f32((x1 - x0) / (y1 - y0)),
  };
}

/** x of an edge on row y, in single precision as libImaging computes it */
const edgeX = (e: Edge, y: number) => f32(f32((y - e.y0) * e.dx) + e.x0);

/** libImaging's scan-line polygon filler for 8-bit images (horizontal edges drawn first, its corner rules kept). */
function fillPolygon(c: Canvas, edges: Edge[], ink: number): void {
  if (edges.length === 0) return;
  let ymin = c.height - 1;
  let ymax = 0;
  const table: Edge[] = [];
  for (const e of edges) {
    if (ymin > e.ymin) ymin = e.ymin;
    if (ymax < e.ymax) ymax = e.ymax;
    if (e.ymin === e.ymax) {
      hline(c, e.xmin, e.ymin, e.xmax, ink);
      continue;
    }
    table.push(e);
  }
  if (ymin < 0) ymin = 0;
  if (ymax > c.height) ymax = c.height;
  const xx = new Float32Array(table.length * 2);
  for (; ymin <= ymax; ymin++) {
    let j = 0;
    for (let i = 0; i < table.length; i++) {
      const cur = table[i]!;
      if (ymin < cur.ymin || ymin > cur.ymax) continue;
      xx[j++] = edgeX(cur, ymin);
      if (ymin === cur.ymax && ymin < ymax) {
        xx[j] = xx[j - 1]!;
        j++;
      } else if (cur.dx !== 0 && Math.round(xx[j - 1]!) === xx[j - 1]) {
        // libImaging's "connect discontiguous corners" step, including its write to xx[k] (k counts edges).
        for (let k = 0; k < i; k++) {
          const other = table[k]!;
          if ((cur.dx > 0 && other.dx <= 0) || (cur.dx < 0 && other.dx >= 0)) continue;
          if (
            ((ymin === cur.ymin && ymin === other.ymin) || (ymin === cur.ymax && ymin === other.ymax)) &&
            xx[j - 1] === edgeX(other, ymin)
          ) {
            const offset = ymin === ymax ? -1 : 1;
            const adj = edgeX(cur, ymin + offset);
            const adjOther = edgeX(other, ymin + offset);
            if (ymin === cur.ymax) xx[k] = cur.dx > 0 ? Math.max(adj, adjOther) + 1 : Math.min(adj, adjOther) - 1;
            else xx[k] = cur.dx > 0 ? Math.min(adj, adjOther) : Math.max(adj, adjOther) + 1;
            break;
          }
        }
      }
    }
    const row = xx.subarray(0, j).sort();
    for (let i = 1; i < j; i += 2) hline(c, roundUpF(row[i - 1]!), ymin, roundDownF(row[i]!), ink);
  }
}

/** ImagingDrawWideLine: one segment of a line wider than one pixel, as a filled quadrilateral. */
function wideSegment(c: Canvas, x0: number, y0: number, x1: number, y1: number, ink: number, width: number): void {
  const dx = x1 - x0;
  const dy = y1 - y0;
  if (dx === 0 && dy === 0) {
    point(c, x0, y0, ink);
    return;
  }
  const big = Math.sqrt(dx * dx + dy * dy);
  const small = (width - 1) / 2;
  const ratioMax = roundUpD(small) / big;
  const ratioMin = roundDownD(small) / big;
  const dxmin = roundDownD(ratioMin * dy);
  const dxmax = roundDownD(ratioMax * dy);
  const dymin = roundDownD(ratioMin * dx);
  const dymax = roundDownD(ratioMax * dx);
  const v = [
    [x0 - dxmin, y0 + dymax],
    [x1 - dxmin, y1 + dymax],
    [x1 + dxmax, y1 - dymin],
    [x0 + dxmax, y0 - dymin],
  ] as const;
  fillPolygon(
    c,
    [0, 1, 2, 3].map((i) => edge(v[i]![0], v[i]![1], v[(i + 1) % 4]![0], v[(i + 1) % 4]![1])),
    ink,
  );
}

/** draw_lines for width > 1: every segment as a wide segment, coordinates cast to int. */
function drawWideLines(c: Canvas, pts: readonly (readonly [number, number])[], ink: number, width: number): void {
  if (width <= 1) throw new Error(`pil-draw: lines of width ${width} (one-pixel Bresenham lines) are not implemented`);
  for (let i = 0; i + 1 < pts.length; i++) {
    wideSegment(c, cInt(pts[i]![0]), cInt(pts[i]![1]), cInt(pts[i + 1]![0]), cInt(pts[i + 1]![1]), ink, width);
  }
}

// ---- the integer ellipse walker (coordinates doubled so that both parities of a and b are exact) ----

class Quarter {
  finished = false;
  private cx = 0;
  private cy = 0;
  private ex = 0;
  private ey = 0;
  private a2 = 0;
  private b2 = 0;
  private a2b2 = 0;
  constructor(a: number, b: number) {
    if (a < 0 || b < 0) {
      this.finished = true;
      return;
    }
    this.cx = a;
    this.cy = b % 2;
    this.ex = a % 2;
    this.ey = b;
    this.a2 = a * a;
    this.b2 = b * b;
    this.a2b2 = this.a2 * this.b2;
  }
  private delta(x: number, y: number): number {
    return Math.abs(this.a2 * y * y + this.b2 * x * x - this.a2b2);
  }
  /** the next point [x, y], or null when done */
  next(): [number, number] | null {
    if (this.finished) return null;
    const ret: [number, number] = [this.cx, this.cy];
    if (this.cx === this.ex && this.cy === this.ey) {
      this.finished = true;
    } else {
      let nx = this.cx;
      let ny = this.cy + 2;
      let nd = this.delta(nx, ny);
      if (nx > 1) {
        let d = this.delta(this.cx - 2, this.cy + 2);
        if (nd > d) {
          nx = this.cx - 2;
          ny = this.cy + 2;
          nd = d;
        }
        d = this.delta(this.cx - 2, this.cy);
        if (nd > d) {
          nx = this.cx - 2;
          ny = this.cy;
        }
      }
      this.cx = nx;
      this.cy = ny;
    }
    return ret;
  }
}

/** Horizontal spans [x0, y, x1] (doubled coordinates, centre at 0) of an ellipse ring of width w. */
function* ellipseSpans(a: number, b: number, w: number): Generator<[number, number, number]> {
  const leftmost = a % 2;
  const outer = new Quarter(a, b);
  const first = outer.next();
  if (w < 1 || first === null) return;
  let [pr, py] = first;
  const inner = new Quarter(a - 2 * (w - 1), b - 2 * (w - 1));
  let pl = leftmost;
  let finished = false;
  while (!finished) {
    const y = py;
    let l = pl;
    const r = pr;
    let nxt: [number, number] | null;
    while ((nxt = outer.next()) !== null && nxt[1] <= y) {}
    if (nxt === null) finished = true;
    else [pr, py] = nxt;
    while ((nxt = inner.next()) !== null && nxt[1] <= y) l = nxt[0];
    pl = nxt === null ? leftmost : nxt[0];
    // libImaging buffers these four and hands them out last-first.
    const buf: [number, number, number][] = [];
    if ((l > 0 || l < r) && y > 0) buf.push([l === 0 ? 2 : l, y, r]);
    if (y > 0) buf.push([-r, y, -l]);
    if (l > 0 || l < r) buf.push([l === 0 ? 2 : l, -y, r]);
    buf.push([-r, -y, -l]);
    for (let i = buf.length - 1; i >= 0; i--) yield buf[i]!;
  }
}

/** ImagingDrawEllipse (ellipseNew): an outline `width` pixels wide, or filled. Box corners are ints. */
export function drawEllipse(c: Canvas, box: readonly number[], ink: number, width: number, fill = false): void {
  const [x0, y0, x1, y1] = box.map(cInt) as [number, number, number, number];
  const a = x1 - x0;
  const b = y1 - y0;
  if (a < 0 || b < 0) return;
  for (const [X0, Y, X1] of ellipseSpans(a, b, fill ? a + b : width)) {
    hline(c, x0 + cInt((X0 + a) / 2), y0 + cInt((Y + b) / 2), x0 + cInt((X1 + a) / 2), ink);
  }
}

/** ImageDraw.arc: the full circle (end - start >= 360) is the only case Leffa draws, an ellipse outline. */
export function drawArc(
  c: Canvas,
  box: readonly number[],
  start: number,
  end: number,
  ink: number,
  width: number,
): void {
  const [al, ar] = normalizeAngles(start, end);
  if (al + 360 !== ar)
    throw new Error(`pil-draw: arcs other than the full circle are not implemented (start ${start}, end ${end})`);
  drawEllipse(c, box, ink, width);
}

// ---- half-plane clipping of the spans, for pie slices ----

type Clip = { kind: 'clip'; a: number; b: number; c: number } | { kind: 'and' | 'or'; l: Clip; r: Clip };
type Ev = { x: number; type: 1 | -1 };

function clipSpan(node: Clip, x0: number, y: number, x1: number): Ev[] {
  if (node.kind === 'clip') {
    const eps = 1e-9;
    const { a: A, b: B, c: C } = node;
    if (Math.abs(A) < eps) {
      if (B * y + C < -eps) {
        x0 = 1;
        x1 = 0;
      }
    } else {
      const ix = -(B * y + C) / A;
      if (A * x0 + B * y + C < eps) x0 = lround(Math.max(x0, ix));
      if (A * x1 + B * y + C < eps) x1 = lround(Math.min(x1, ix));
    }
    return x0 <= x1
      ? [
          { x: x0, type: 1 },
          { x: x1, type: -1 },
        ]
      : [];
  }
  const l1 = clipSpan(node.l, x0, y, x1);
  const l2 = clipSpan(node.r, x0, y, x1);
  const out: Ev[] = [];
  let i1 = 0;
  let i2 = 0;
  let k1 = 0;
  let k2 = 0;
  while (i1 < l1.length || i2 < l2.length) {
    let t: Ev;
    const e1 = l1[i1];
    const e2 = l2[i2];
    if (e2 === undefined || (e1 !== undefined && (e1.x < e2.x || (e1.x === e2.x && e1.type > e2.type)))) {
      t = e1!;
      k1 += t.type;
      i1++;
    } else {
      t = e2;
      k2 += t.type;
      i2++;
    }
    const tail = out[out.length - 1];
    const keep =
      node.kind === 'or'
        ? (t.type === 1 && (tail === undefined || tail.type === -1)) || (t.type === -1 && k1 === 0 && k2 === 0)
        : (t.type === 1 && (tail === undefined || tail.type === -1) && k1 > 0 && k2 > 0) ||
          (t.type === -1 && tail !== undefined && tail.type === 1 && (k1 === 0 || k2 === 0));
    if (keep) out.push(t);
  }
  return out;
}

/** libImaging's normalize_angles on single-precision angles: 0 <= al < 360, al <= ar <= al + 360. */
function normalizeAngles(start: number, end: number): [number, number] {
  let al = f32(start);
  let ar = f32(end);
  if (f32(ar - al) >= 360) return [0, 360];
  al = f32((al < 0 ? 360 - (-al % 360) : al) % 360);
  ar = f32(al + ((ar < al ? 360 - (f32(al - ar) % 360) : f32(ar - al)) % 360));
  return [al, ar];
}

/** ImageDraw.pieslice(box, start, end, fill=ink) without an outline: a filled pie slice. */
export function drawPieslice(c: Canvas, box: readonly number[], start: number, end: number, ink: number): void {
  const [al, ar] = normalizeAngles(start, end);
  const [x0, y0, x1, y1] = box.map(cInt) as [number, number, number, number];
  if (al + 360 === ar) {
    drawEllipse(c, [x0, y0, x1, y1], ink, 0, true);
    return;
  }
  if (al === ar) return;
  const a = x1 - x0;
  const b = y1 - y0;
  if (a < 0 || b < 0) return;
  const rad = Math.PI / 180;
  const xl = a * Math.cos(al * rad);
  const xr = a * Math.cos(ar * rad);
  const yl = b * Math.sin(al * rad);
  const yr = b * Math.sin(ar * rad);
  let root: Clip = {
    kind: ar - al < 180 ? 'and' : 'or',
    l: { kind: 'clip', a: -yl, b: xl, c: 0 },
    r: { kind: 'clip', a: yr, b: -xr, c: 0 },
  };
  // libImaging adds a third half-plane to avoid spikes on narrow slices.
  if (ar - al < 90) root = { kind: 'and', l: root, r: { kind: 'clip', a: (xl + xr) / 2, b: (yl + yr) / 2, c: 0 } };
  for (const [X0, Y, X1] of ellipseSpans(a, b, x1 + y1 - x0 - y0)) {
    const ev = clipSpan(root, X0, Y, X1);
    for (let i = 0; i + 1 < ev.length; i += 2) {
      hline(c, x0 + cInt((ev[i]!.x + a) / 2), y0 + cInt((Y + b) / 2), x0 + cInt((ev[i + 1]!.x + a) / 2), ink);
    }
  }
}

// The trailing libImaging steps above use the C argument conventions (doubled coordinates and int boxes).

/** Python's float modulo (result takes the divisor's sign). */
function pyMod(x: number, m: number): number {
  let r = x % m;
  if (r !== 0) {
    if (m < 0 !== r < 0) r += m;
  } else r = m < 0 ? -0 : 0;
  return r;
}

/** math.degrees / math.radians as CPython computes them (one multiplication by a rounded constant). */
const DEG_PER_RAD = 180 / Math.PI;
const RAD_PER_DEG = Math.PI / 180;

/** ImageDraw.line(xy, fill=ink, width, joint='curve' when curve). Points may be fractional (cast to int when drawn). */
export function drawLine(
  c: Canvas,
  pts: readonly (readonly [number, number])[],
  ink: number,
  width: number,
  curve = false,
): void {
  drawWideLines(c, pts, ink, width);
  if (!curve || width <= 4) return;
  for (let i = 1; i + 1 < pts.length; i++) {
    const p = pts[i]!;
    const angles = [
      [pts[i - 1]!, p],
      [p, pts[i + 1]!],
    ].map(([s, e]) => pyMod(Math.atan2(e![0] - s![0], s![1] - e![1]) * DEG_PER_RAD, 360)) as [number, number];
    if (angles[0] === angles[1]) continue; // straight: no joint
    const atAngle = (angle: number): [number, number] => {
      const t = (angle - 90) * RAD_PER_DEG;
      const distance = width / 2 - 1;
      const step = (d: number) => (d > 0 ? Math.floor(d) : Math.ceil(d));
      return [p[0] + step(distance * Math.cos(t)), p[1] + step(distance * Math.sin(t))];
    };
    const flipped =
      (angles[1] > angles[0] && angles[1] - 180 > angles[0]) || (angles[1] < angles[0] && angles[1] + 180 > angles[0]);
    const box = [p[0] - width / 2 + 1, p[1] - width / 2 + 1, p[0] + width / 2 - 1, p[1] + width / 2 - 1];
    const [start, end] = flipped ? [angles[1] + 90, angles[0] + 90] : [angles[0] - 90, angles[1] - 90];
    drawPieslice(c, box, start - 90, end - 90, ink);
    if (width > 8) {
      // Pillow covers the gaps between the segments and the joint with a 3-pixel line.
      const side = flipped ? 90 : -90;
      drawWideLines(c, [atAngle(angles[0] + side), p, atAngle(angles[1] + side)], ink, 3);
    }
  }
}
