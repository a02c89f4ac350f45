/**
 * Leffa's agnostic masks against the re-statement of leffa_utils/utils.py that Pillow 9 / OpenCV 4 / numpy run in
 * test/golden/cases_leffa_masks.py (`npm run golden`): synthetic parse maps and keypoints at odd sizes, every
 * category, hd and dc, missing points; and the drawing steps alone (Pillow lines with curve joints, ellipse
 * outlines, OpenCV's refine_mask). Every mask must match pixel for pixel.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';
import {
  type LeffaGarmentCategory,
  type LeffaKeypoints,
  type LeffaMaskType,
  leffaAgnosticMask,
} from '../src/leffa-masks.js';
import { largestContourFill } from '../src/raster/cv-contours.js';
import { drawArc, drawLine, newCanvas } from '../src/raster/pil-draw.js';

const path = fileURLToPath(new URL('../../../test/golden/out/leffa_masks.safetensors', import.meta.url));
if (!existsSync(path))
  throw new Error(`golden file ${path} is missing: run \`npm run golden\` (needs Debian's python3-torch)`);
const { tensors, metadata } = T.readSafetensors(new Uint8Array(readFileSync(path)), path);
const get = (key: string) => {
  const t = tensors.get(key);
  if (!t) throw new Error(`golden tensor ${key} missing`);
  return t.data;
};
const bytes = (key: string) => Uint8Array.from(get(key));

/** The differing pixels, listed (up to 10) so a failure says where. */
function diff(actual: Uint8Array, expected: Uint8Array, width: number): { count: number; first: string[] } {
  const first: string[] = [];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    if ((actual[i] ? 255 : 0) !== (expected[i] ? 255 : 0)) {
      count++;
      if (first.length < 10) first.push(`(${i % width},${Math.floor(i / width)}) ${actual[i]} vs ${expected[i]}`);
    }
  }
  return { count, first };
}

interface MaskCase {
  name: string;
  height: number;
  width: number;
  category: LeffaGarmentCategory;
  modelType: LeffaMaskType;
  missing: number[];
}

describe('leffaAgnosticMask = Leffa get_agnostic_mask_hd / _dc', () => {
  const cases = JSON.parse(metadata.cases!) as MaskCase[];
  it('covers hd and dc, every category, odd sizes and both sides of the 256 / 512 height branches', () => {
    expect(new Set(cases.map((c) => `${c.category}/${c.modelType}`)).size).toBe(6);
    expect(
      cases.some((c) => c.height > 512) &&
        cases.some((c) => c.height > 256 && c.height <= 512) &&
        cases.some((c) => c.height <= 256),
    ).toBe(true);
    expect(cases.some((c) => c.missing.length > 0)).toBe(true);
  });
  for (const c of cases) {
    it(c.name, () => {
      const kp = get(`${c.name}.keypoints`);
      // Missing points as null in even-numbered cases, as Leffa's [0, 0] otherwise: both must work.
      const asNull = cases.indexOf(c) % 2 === 0;
      const keypoints: LeffaKeypoints = Array.from({ length: 18 }, (_, i) =>
        asNull && c.missing.includes(i) ? null : ([kp[2 * i]!, kp[2 * i + 1]!] as const),
      );
      const mask = leffaAgnosticMask(bytes(`${c.name}.parsing`), c.height, c.width, keypoints, c.category, c.modelType);
      const expected = bytes(`${c.name}.mask`);
      expect(mask.length).toBe(c.height * c.width);
      expect([...new Set(mask)].every((v) => v === 0 || v === 255)).toBe(true);
      const inside = expected.reduce((n, v) => n + (v ? 1 : 0), 0);
      expect(inside, 'the golden mask is not empty').toBeGreaterThan(0);
      expect(diff(mask, expected, c.width)).toEqual({ count: 0, first: [] });
    });
  }
});

describe('Pillow / OpenCV steps', () => {
  const prims = JSON.parse(metadata.primitives!) as {
    name: string;
    kind: 'line' | 'arc' | 'refine';
    height: number;
    width: number;
    lineWidth?: number;
    points?: [number, number][];
    box?: number[];
  }[];
  for (const p of prims) {
    it(`${p.kind} ${p.name}`, () => {
      let out: Uint8Array;
      if (p.kind === 'refine') {
        out = largestContourFill(bytes(`${p.name}.in`), p.width, p.height);
      } else {
        const c = newCanvas(p.width, p.height);
        if (p.kind === 'line') drawLine(c, p.points!, 255, p.lineWidth!, true);
        else drawArc(c, p.box!, 0, 360, 255, p.lineWidth!);
        out = c.data;
      }
      expect(diff(out, bytes(`${p.name}.out`), p.width)).toEqual({ count: 0, first: [] });
    });
  }
});

describe('leffaAgnosticMask input errors', () => {
  const parsing = new Uint8Array(64 * 48);
  const kp: LeffaKeypoints = Array.from({ length: 18 }, () => [10, 10] as const);
  it('names the problem', () => {
    expect(() => leffaAgnosticMask(parsing, 64, 47, kp, 'upper_body', 'hd')).toThrow(/3072 labels, 47x64 needs 3008/);
    expect(() => leffaAgnosticMask(parsing, 64, 48, kp.slice(0, 17), 'upper_body', 'hd')).toThrow(/17 keypoints/);
    expect(() => leffaAgnosticMask(parsing, 64, 48, kp, 'shoes' as LeffaGarmentCategory, 'hd')).toThrow(
      /category 'shoes'/,
    );
    expect(() => leffaAgnosticMask(parsing, 64, 48, kp, 'upper_body', 'xl' as LeffaMaskType)).toThrow(
      /model type 'xl'/,
    );
    const bad = parsing.slice();
    bad[5] = 19;
    expect(() => leffaAgnosticMask(bad, 64, 48, kp, 'upper_body', 'dc')).toThrow(/label 19 at pixel 5/);
  });
});
