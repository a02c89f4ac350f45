/** Binary image operations on H*W masks (1 = set), for the agnostic-mask recipe. */

/** Dilation by a (2r+1) x (2r+1) square, separably. */
export function dilate(mask: Uint8Array, width: number, height: number, r: number): Uint8Array {
  if (r <= 0) return mask.slice();
  const tmp = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = 0;
      for (let d = Math.max(0, x - r); d <= Math.min(width - 1, x + r) && !v; d++) v = mask[y * width + d]!;
      tmp[y * width + x] = v;
    }
  }
  const out = new Uint8Array(mask.length);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      let v = 0;
      for (let d = Math.max(0, y - r); d <= Math.min(height - 1, y + r) && !v; d++) v = tmp[d * width + x]!;
      out[y * width + x] = v;
    }
  }
  return out;
}

/**
 * 4-connected regions of equal value (pixels where `include` is false belong to none): each pixel's region id
 * (-1 for none), and each region's value and size.
 */
export function regionsOf(
  values: ArrayLike<number>,
  width: number,
  height: number,
  include: (value: number) => boolean = () => true,
): { id: Int32Array; value: number[]; sizes: number[] } {
  const id = new Int32Array(values.length).fill(-1);
  const value: number[] = [];
  const sizes: number[] = [];
  const stack: number[] = [];
  for (let start = 0; start < values.length; start++) {
    const v = values[start]!;
    if (id[start] !== -1 || !include(v)) continue;
    const r = value.length;
    let size = 0;
    id[start] = r;
    stack.push(start);
    while (stack.length) {
      const i = stack.pop()!;
      size++;
      const x = i % width;
      const y = (i - x) / width;
      const visit = (j: number) => {
        if (id[j] === -1 && values[j] === v) {
          id[j] = r;
          stack.push(j);
        }
      };
      if (x > 0) visit(i - 1);
      if (x < width - 1) visit(i + 1);
      if (y > 0) visit(i - width);
      if (y < height - 1) visit(i + width);
    }
    value.push(v);
    sizes.push(size);
  }
  return { id, value, sizes };
}

/** 4-connected components of set pixels; returns the label image (0 = unset) and component sizes (index 0 unused). */
export function components(mask: Uint8Array, width: number, height: number): { labels: Int32Array; sizes: number[] } {
  const { id, sizes } = regionsOf(
    Uint8Array.from(mask, (v) => (v ? 1 : 0)),
    width,
    height,
    (v) => v === 1,
  );
  return { labels: Int32Array.from(id, (r) => r + 1), sizes: [0, ...sizes] };
}

/** Keeps only the largest component. */
export function largestComponent(mask: Uint8Array, width: number, height: number): Uint8Array {
  const { labels, sizes } = components(mask, width, height);
  let best = 0;
  for (let k = 1; k < sizes.length; k++) if (sizes[k]! > sizes[best]!) best = k;
  return Uint8Array.from(labels, (l) => (best > 0 && l === best ? 1 : 0));
}

/** Fills holes: unset regions that do not touch the border become set. */
export function fillHoles(mask: Uint8Array, width: number, height: number): Uint8Array {
  const inverse = Uint8Array.from(mask, (v) => (v ? 0 : 1));
  const { labels, sizes } = components(inverse, width, height);
  const touches = new Uint8Array(sizes.length);
  for (let x = 0; x < width; x++) {
    touches[labels[x]!] = 1;
    touches[labels[(height - 1) * width + x]!] = 1;
  }
  for (let y = 0; y < height; y++) {
    touches[labels[y * width]!] = 1;
    touches[labels[y * width + width - 1]!] = 1;
  }
  return Uint8Array.from(mask, (v, i) => (v || !touches[labels[i]!] ? 1 : 0));
}

/** Draws a thick line segment (a capsule of radius r) into the mask. */
export function drawLine(
  mask: Uint8Array,
  width: number,
  height: number,
  a: { x: number; y: number },
  b: { x: number; y: number },
  r: number,
): void {
  const x0 = Math.max(0, Math.floor(Math.min(a.x, b.x) - r));
  const x1 = Math.min(width - 1, Math.ceil(Math.max(a.x, b.x) + r));
  const y0 = Math.max(0, Math.floor(Math.min(a.y, b.y) - r));
  const y1 = Math.min(height - 1, Math.ceil(Math.max(a.y, b.y) + r));
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = Math.max(dx * dx + dy * dy, 1e-9);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5 - a.x;
      const py = y + 0.5 - a.y;
      const t = Math.max(0, Math.min(1, (px * dx + py * dy) / len2));
      if ((px - t * dx) ** 2 + (py - t * dy) ** 2 <= r * r) mask[y * width + x] = 1;
    }
  }
}
