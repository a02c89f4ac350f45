import * as T from '@leffa-webgpu/core';
import {
  LIMB_SEQ,
  MAP_IDX,
  OPENPOSE_BODY,
  OPENPOSE_SMALL,
  OpenPoseBody,
  type Peak,
  assemblePeople,
  estimatePose,
  openPoseConfigFrom,
  peakMask,
  poseMaps,
  renderSkeleton,
  resizeByFactor,
  toOpenPoseJson,
  toPeople,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

const W = 120;
const H = 100;

/** A front-facing person's 18 keypoints around (cx, cy), scaled by s. */
function person(cx: number, cy: number, s: number): [number, number][] {
  const p = (x: number, y: number): [number, number] => [Math.round(cx + x * s), Math.round(cy + y * s)];
  return [
    p(0, -30),
    p(0, -20),
    p(-8, -20),
    p(-12, -8),
    p(-14, 4),
    p(8, -20),
    p(12, -8),
    p(14, 4),
    p(-5, 4),
    p(-6, 18),
    p(-6, 32),
    p(5, 4),
    p(6, 18),
    p(6, 32),
    p(-2, -32),
    p(2, -32),
    p(-4, -30),
    p(4, -30),
  ];
}

/** A PAF with the unit limb vector painted within `width` px of each limb segment of each person. */
function pafFor(people: [number, number][][], width = 2): Float32Array {
  const paf = new Float32Array(38 * H * W);
  for (const kp of people) {
    MAP_IDX.forEach(([cx, cy], k) => {
      const [a, b] = LIMB_SEQ[k]!.map((i) => kp[i - 1]!) as [[number, number], [number, number]];
      const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
      const ux = (b[0] - a[0]) / len;
      const uy = (b[1] - a[1]) / len;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const t = ((x - a[0]) * ux + (y - a[1]) * uy) / len;
          const d = Math.abs(-(x - a[0]) * uy + (y - a[1]) * ux);
          if (t >= 0 && t <= 1 && d <= width) {
            paf[(cx - 19) * H * W + y * W + x] = ux;
            paf[(cy - 19) * H * W + y * W + x] = uy;
          }
        }
      }
    });
  }
  return paf;
}

function peaksFor(people: [number, number][][], drop: [number, number][] = []): Peak[][] {
  let id = 0;
  return Array.from({ length: 18 }, (_, part) =>
    people.flatMap((kp, n) =>
      drop.some(([pn, pp]) => pn === n && pp === part)
        ? []
        : [{ x: kp[part]![0], y: kp[part]![1], score: 0.9, id: id++ }],
    ),
  );
}

const field = (paf: Float32Array) => ({
  width: W,
  height: H,
  value: (x: number, y: number, c: number) =>
    paf[c * H * W + Math.min(H - 1, Math.max(0, y)) * W + Math.min(W - 1, Math.max(0, x))]!,
});

describe('OpenPose decoding', () => {
  it('separates two overlapping people', () => {
    const a = person(45, 50, 1.1);
    const b = person(68, 52, 1.0);
    const result = toPeople(assemblePeople(peaksFor([a, b]), field(pafFor([a, b])), { imageHeight: H }));
    expect(result.length).toBe(2);
    const sorted = result.sort((p, q) => p.keypoints[1]![0] - q.keypoints[1]![0]);
    for (const [found, truth] of [
      [sorted[0]!, a],
      [sorted[1]!, b],
    ] as const) {
      found.keypoints.forEach(([x, y, s], i) => {
        expect(s).toBeGreaterThan(0);
        expect([x, y]).toEqual(truth[i]);
      });
    }
  });

  it('keeps a person with a missing limb, without that part', () => {
    const a = person(60, 50, 1.2);
    const result = toPeople(
      assemblePeople(
        peaksFor(
          [a],
          [
            [0, 4],
            [0, 7],
          ],
        ),
        field(pafFor([a])),
        { imageHeight: H },
      ),
    );
    expect(result.length).toBe(1);
    expect(result[0]!.keypoints[4]![2]).toBe(0);
    expect(result[0]!.keypoints[7]![2]).toBe(0);
    expect(result[0]!.keypoints[3]![2]).toBeGreaterThan(0);
  });

  it('rejects a limb far too long for the image (distance prior)', () => {
    const a = person(60, 50, 1.0);
    // Move the right wrist 300 px away: the PAF still points along the limb, but the prior makes it negative.
    const far = a.map((p) => [...p] as [number, number]);
    far[4] = [far[3]![0] - 2, far[3]![1] + 300];
    const imageHeight = 80;
    const peaks = peaksFor([far]);
    const paf = pafFor([a]);
    // A long, perfectly aligned PAF along the too-long forearm.
    const [ex, ey] = far[3]!;
    for (let y = ey; y < H; y++) paf[(35 - 19) * H * W + y * W + ex] = 1;
    const result = toPeople(assemblePeople(peaks, field(paf), { imageHeight }));
    expect(result.length).toBe(1);
    expect(result[0]!.keypoints[4]![2]).toBe(0);
  });

  it('drops fragments with fewer than 4 parts', () => {
    const a = person(60, 50, 1.0);
    const peaks = peaksFor([a]).map((list, part) => ([0, 1, 2].includes(part) ? list : []));
    expect(assemblePeople(peaks, field(pafFor([a])), { imageHeight: H }).subset.length).toBe(0);
  });

  it('finds heatmap peaks on the GPU after Gaussian smoothing', async () => {
    const heat = new Float32Array(19 * 40 * 50);
    const blob = (c: number, x0: number, y0: number, amp: number) => {
      for (let y = 0; y < 40; y++)
        for (let x = 0; x < 50; x++)
          heat[c * 2000 + y * 50 + x]! += amp * Math.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 18);
    };
    blob(0, 10, 12, 1);
    blob(0, 35, 25, 0.8);
    blob(3, 20, 30, 0.05); // below thre1 after smoothing
    const mask = await peakMask(T.tensor(heat, [19, 40, 50])).data();
    const found = (c: number) =>
      [...mask.subarray(c * 2000, (c + 1) * 2000)].flatMap((v, i) => (v > 0.5 ? [[i % 50, Math.floor(i / 50)]] : []));
    expect(found(0)).toEqual([
      [10, 12],
      [35, 25],
    ]);
    expect(found(3)).toEqual([]);
  });

  it('runs end to end on an image and renders the skeleton and JSON', async () => {
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    const image = { width: 48, height: 64, data: new Uint8Array(48 * 64 * 3).fill(120) };
    const r = await estimatePose(model, image, { scales: [0.25] });
    expect(Array.isArray(r.people)).toBe(true);
    const json = toOpenPoseJson([{ keypoints: person(60, 50, 1).map(([x, y]) => [x, y, 0.9]), score: 10 }]);
    expect(json.people[0]!.pose_keypoints_2d.length).toBe(54);
    const canvas = renderSkeleton([{ keypoints: person(60, 50, 1).map(([x, y]) => [x, y, 0.9]), score: 10 }], W, H);
    // The neck joint is drawn in its colour (85, 255, 0 for part 1... index 1 is orange-red [255, 85, 0]).
    const [nx, ny] = person(60, 50, 1)[1]!;
    expect(Array.from(canvas.subarray(3 * (ny * W + nx), 3 * (ny * W + nx) + 3))).toEqual([255, 85, 0]);
  });

  it("finalHeatmapRelu: only the last heatmap is rectified (released config), not the small model's", async () => {
    const x = T.randn([1, 3, 32, 24]);
    const plain = new OpenPoseBody(OPENPOSE_SMALL);
    const released = new OpenPoseBody({ ...OPENPOSE_SMALL, finalHeatmapRelu: true });
    released.loadStateDict(plain.stateDict());
    const a = plain.forward(x).stages;
    const b = released.forward(x).stages;
    const last = await b[2]!.heatmap.data();
    const raw = await a[2]!.heatmap.data();
    expect(Math.min(...raw)).toBeLessThan(0);
    expect([...last]).toEqual([...raw].map((v) => Math.max(0, v)));
    expect([...(await b[2]!.paf.data())]).toEqual([...(await a[2]!.paf.data())]);
    expect([...(await b[1]!.heatmap.data())]).toEqual([...(await a[1]!.heatmap.data())]);
    expect(OPENPOSE_BODY.finalHeatmapRelu).toBe(true);
    expect(() => new OpenPoseBody({ ...OPENPOSE_SMALL, boxsize: 0 })).toThrow(/boxsize must be positive/);
  });

  it('configs recorded before finalHeatmapRelu / boxsize load as trained (no ReLU, 256 box)', () => {
    const { finalHeatmapRelu: _r, boxsize: _b, ...old } = OPENPOSE_SMALL;
    expect(openPoseConfigFrom(old)).toEqual({ ...old, finalHeatmapRelu: false, boxsize: 256 });
    expect(openPoseConfigFrom(undefined)).toBe(OPENPOSE_SMALL);
    expect(openPoseConfigFrom({ ...OPENPOSE_SMALL, boxsize: 512 }).boxsize).toBe(512);
    const { stages: _s, ...broken } = old;
    expect(() => openPoseConfigFrom(broken)).toThrow(/lacks 'stages'/);
  });

  it('the network sees scale x boxsize px tall images (body.py), and bad scales are refused', () => {
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    const image = { width: 48, height: 64, data: new Uint8Array(48 * 64 * 3).fill(90) };
    const seen: number[][] = [];
    const forward = model.forward.bind(model);
    model.forward = (x) => (seen.push([...x.shape]), forward(x));
    const maps = poseMaps(model, image, { scales: [0.5, 0.25], boxsize: 200 });
    // 100 x 75 (padded to 104 x 80) and 50 x 38 (56 x 40); the maps come back at the image size.
    expect(seen).toEqual([
      [1, 3, 104, 80],
      [1, 3, 56, 40],
    ]);
    expect([...maps.heatmap.shape]).toEqual([19, 64, 48]);
    // Default: the model's boxsize (256 for the small config) at scale 0.5.
    seen.length = 0;
    poseMaps(model, image);
    expect(seen).toEqual([[1, 3, 128, 96]]);
    expect(() => poseMaps(model, image, { scales: [] })).toThrow(/scales must be positive/);
    expect(() => poseMaps(model, image, { scales: [0.5], boxsize: -1 })).toThrow(/boxsize must be/);
  });

  it('resizeByFactor sizes as OpenCV (cvRound: half to even) and keeps a constant image constant; poseMaps refuses a short buffer', async () => {
    // 45 x 0.5 = 22.5 -> 22 and 43 x 0.5 = 21.5 -> 22 (Math.round would give 23 and 22).
    expect([...resizeByFactor(T.zeros([1, 1, 4, 45]), 0.5).shape]).toEqual([1, 1, 2, 22]);
    expect([...resizeByFactor(T.zeros([1, 1, 4, 43]), 0.5).shape]).toEqual([1, 1, 2, 22]);
    // Upscaling past the floor size: 5 x 1.9 = 9.5 -> 10 (floor 9); the replicated border keeps values.
    const up = resizeByFactor(T.full([1, 2, 5, 5], 7), 1.9);
    expect([...up.shape]).toEqual([1, 2, 10, 10]);
    for (const v of await up.data()) expect(v).toBeCloseTo(7, 5);
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    expect(() => poseMaps(model, { width: 10, height: 10, data: new Uint8Array(299) })).toThrow(
      /expected a 10x10 RGB image \(300 bytes\), got 299/,
    );
    T.dispose(model.parameters());
  });
});
