import type { Point } from './skeleton.js';

/**
 * Body parts as shapes with exact local surface coordinates: for a pixel inside, `local` gives (t, s) with t
 * along the part (0 at its start, 1 at its end) and s across it (-1 .. 1, negative towards the image left);
 * `place` is the inverse, mapping (t, s) back to the image. Exact inverses make the ground-truth flows exact.
 */
export interface Shape {
  /** Axis-aligned bounds [x0, y0, x1, y1] (pixels), to skip the exact test far from the shape. */
  readonly bounds: readonly [number, number, number, number];
  /** Local (t, s) of p, or null when p is outside. */
  local(p: Point): { t: number; s: number } | null;
  place(t: number, s: number): Point;
}

/**
 * A straight segment a -> b whose half-width varies linearly from ra to rb (a trapezoid with flat ends):
 * torso, limbs, neck.
 */
export class Band implements Shape {
  private readonly len: number;
  private readonly dir: Point;
  private readonly perp: Point;
  readonly bounds: readonly [number, number, number, number];

  constructor(
    readonly a: Point,
    readonly b: Point,
    readonly ra: number,
    readonly rb: number,
  ) {
    const r = Math.max(ra, rb);
    this.bounds = [Math.min(a.x, b.x) - r, Math.min(a.y, b.y) - r, Math.max(a.x, b.x) + r, Math.max(a.y, b.y) + r];
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    this.len = Math.max(Math.hypot(dx, dy), 1e-6);
    this.dir = { x: dx / this.len, y: dy / this.len };
    // The direction rotated by a fixed quarter turn (image right when the band points down), so that the
    // frame moves rigidly with a limb: the same (t, s) is the same surface point in every pose.
    this.perp = { x: this.dir.y, y: -this.dir.x };
  }

  local(p: Point): { t: number; s: number } | null {
    const rx = p.x - this.a.x;
    const ry = p.y - this.a.y;
    const t = (rx * this.dir.x + ry * this.dir.y) / this.len;
    if (t < 0 || t > 1) return null;
    const r = this.ra + (this.rb - this.ra) * t;
    const s = (rx * this.perp.x + ry * this.perp.y) / r;
    return s >= -1 && s <= 1 ? { t, s } : null;
  }

  place(t: number, s: number): Point {
    const r = this.ra + (this.rb - this.ra) * t;
    return {
      x: this.a.x + this.dir.x * t * this.len + this.perp.x * s * r,
      y: this.a.y + this.dir.y * t * this.len + this.perp.y * s * r,
    };
  }
}

/**
 * An ellipse (head, hands, feet, joint discs), optionally rotated. Local coordinates: t = vertical position
 * (0 top, 1 bottom), s = horizontal (-1 left, 1 right), both in the ellipse's own frame.
 */
export class Ellipse implements Shape {
  readonly bounds: readonly [number, number, number, number];

  constructor(
    readonly c: Point,
    readonly rx: number,
    readonly ry: number,
    readonly angle = 0,
  ) {
    const r = Math.max(rx, ry);
    this.bounds = [c.x - r, c.y - r, c.x + r, c.y + r];
  }

  local(p: Point): { t: number; s: number } | null {
    const cos = Math.cos(this.angle);
    const sin = Math.sin(this.angle);
    const dx = p.x - this.c.x;
    const dy = p.y - this.c.y;
    const u = (dx * cos - dy * sin) / this.rx;
    const v = (dx * sin + dy * cos) / this.ry;
    return u * u + v * v <= 1 ? { t: (v + 1) / 2, s: u } : null;
  }

  place(t: number, s: number): Point {
    const u = s * this.rx;
    const v = (2 * t - 1) * this.ry;
    const cos = Math.cos(this.angle);
    const sin = Math.sin(this.angle);
    return { x: this.c.x + u * cos + v * sin, y: this.c.y - u * sin + v * cos };
  }
}
