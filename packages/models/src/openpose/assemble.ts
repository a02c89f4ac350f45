/**
 * OpenPose's greedy bottom-up parsing (Cao et al. 2017, as the widely used PyTorch port implements it):
 * peaks per part -> limb candidates scored by the part affinity field -> people. Runs on the CPU over the
 * peak list and the upsampled PAF, so it is independent of the network.
 */

/** Limbs as 1-based part pairs, and the PAF channels (x, y) of each, in the port's order. */
export const LIMB_SEQ: readonly [number, number][] = [
  [2, 3],
  [2, 6],
  [3, 4],
  [4, 5],
  [6, 7],
  [7, 8],
  [2, 9],
  [9, 10],
  [10, 11],
  [2, 12],
  [12, 13],
  [13, 14],
  [2, 1],
  [1, 15],
  [15, 17],
  [1, 16],
  [16, 18],
  [3, 17],
  [6, 18],
];
export const MAP_IDX: readonly [number, number][] = [
  [31, 32],
  [39, 40],
  [33, 34],
  [35, 36],
  [41, 42],
  [43, 44],
  [19, 20],
  [21, 22],
  [23, 24],
  [25, 26],
  [27, 28],
  [29, 30],
  [47, 48],
  [49, 50],
  [53, 54],
  [51, 52],
  [55, 56],
  [37, 38],
  [45, 46],
];

export interface Peak {
  x: number;
  y: number;
  score: number;
  /** Index into the flat candidate list. */
  id: number;
}

/** Channel-last access to an upsampled PAF: value(x, y, channel). */
export interface PafField {
  width: number;
  height: number;
  value(x: number, y: number, channel: number): number;
}

export interface AssemblyOptions {
  /** PAF sample threshold (0.05). */
  thre2?: number;
  /** Samples along each limb (10). */
  midNum?: number;
  /** Image height for the distance prior min(0.5 H / length - 1, 0). */
  imageHeight: number;
}

export interface Assembly {
  /** Flat candidates [x, y, score, id]. */
  candidate: number[][];
  /** One row per person: 18 candidate ids (-1 missing), total score, part count. */
  subset: number[][];
}

const linspace = (a: number, b: number, n: number) =>
  Array.from({ length: n }, (_, i) => (n === 1 ? a : a + ((b - a) * i) / (n - 1)));

/** Python's round (half to even), as np.round / round() in the reference. */
const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/**
 * Connects peaks into people. `peaks[p]` lists part p's peaks (with global ids in candidate order).
 * People with fewer than 4 parts or a mean score below 0.4 are dropped.
 */
export function assemblePeople(peaks: Peak[][], paf: PafField, options: AssemblyOptions): Assembly {
  const thre2 = options.thre2 ?? 0.05;
  const mid = options.midNum ?? 10;
  const special = new Set<number>();
  const connections: number[][][] = [];
  for (let k = 0; k < MAP_IDX.length; k++) {
    const [cx, cy] = MAP_IDX[k]!.map((c) => c - 19) as [number, number];
    const candA = peaks[LIMB_SEQ[k]![0] - 1]!;
    const candB = peaks[LIMB_SEQ[k]![1] - 1]!;
    if (candA.length === 0 || candB.length === 0) {
      special.add(k);
      connections.push([]);
      continue;
    }
    const scored: [number, number, number][] = [];
    candA.forEach((a, i) => {
      candB.forEach((b, j) => {
        let vx = b.x - a.x;
        let vy = b.y - a.y;
        const norm = Math.max(0.001, Math.hypot(vx, vy));
        vx /= norm;
        vy /= norm;
        const xs = linspace(a.x, b.x, mid);
        const ys = linspace(a.y, b.y, mid);
        const samples = xs.map((x, s) => {
          const px = roundHalfEven(x);
          const py = roundHalfEven(ys[s]!);
          return paf.value(px, py, cx) * vx + paf.value(px, py, cy) * vy;
        });
        const score =
          samples.reduce((p, v) => p + v, 0) / samples.length + Math.min((0.5 * options.imageHeight) / norm - 1, 0);
        const above = samples.filter((v) => v > thre2).length;
        if (above > 0.8 * samples.length && score > 0) scored.push([i, j, score]);
      });
    });
    scored.sort((p, q) => q[2] - p[2]);
    const connection: number[][] = [];
    const usedA = new Set<number>();
    const usedB = new Set<number>();
    for (const [i, j, s] of scored) {
      if (usedA.has(i) || usedB.has(j)) continue;
      connection.push([candA[i]!.id, candB[j]!.id, s, i, j]);
      usedA.add(i);
      usedB.add(j);
      if (connection.length >= Math.min(candA.length, candB.length)) break;
    }
    connections.push(connection);
  }

  const candidate = peaks
    .flat()
    .sort((a, b) => a.id - b.id)
    .map((p) => [p.x, p.y, p.score, p.id]);
  let subset: number[][] = [];
  for (let k = 0; k < MAP_IDX.length; k++) {
    if (special.has(k)) continue;
    const indexA = LIMB_SEQ[k]![0] - 1;
    const indexB = LIMB_SEQ[k]![1] - 1;
    for (const conn of connections[k]!) {
      const [partA, partB, limbScore] = conn as [number, number, number];
      const found: number[] = [];
      subset.forEach((row, j) => {
        if ((row[indexA] === partA || row[indexB] === partB) && found.length < 2) found.push(j);
      });
      if (found.length === 1) {
        const row = subset[found[0]!]!;
        if (row[indexB] !== partB) {
          row[indexB] = partB;
          row[19]! += 1;
          row[18]! += candidate[partB]![2]! + limbScore;
        }
      } else if (found.length === 2) {
        const [j1, j2] = found as [number, number];
        const r1 = subset[j1]!;
        const r2 = subset[j2]!;
        const overlap = r1.slice(0, 18).some((v, p) => v >= 0 && r2[p]! >= 0);
        if (!overlap) {
          // Two partial people that share this limb's ends: merge them.
          for (let p = 0; p < 18; p++) r1[p]! += r2[p]! + 1;
          r1[18]! += r2[18]! + limbScore;
          r1[19]! += r2[19]!;
          subset = subset.filter((_, j) => j !== j2);
        } else {
          r1[indexB] = partB;
          r1[19]! += 1;
          r1[18]! += candidate[partB]![2]! + limbScore;
        }
      } else if (found.length === 0 && k < 17) {
        const row = new Array<number>(20).fill(-1);
        row[indexA] = partA;
        row[indexB] = partB;
        row[19] = 2;
        row[18] = candidate[partA]![2]! + candidate[partB]![2]! + limbScore;
        subset.push(row);
      }
    }
  }
  subset = subset.filter((row) => row[19]! >= 4 && row[18]! / row[19]! >= 0.4);
  return { candidate, subset };
}

/** A detected person: 18 keypoints (x, y, score; score 0 where the part was not found). */
export interface Person {
  keypoints: [number, number, number][];
  score: number;
}

export function toPeople(a: Assembly): Person[] {
  return a.subset.map((row) => ({
    keypoints: row.slice(0, 18).map((id) => {
      if (id < 0) return [0, 0, 0] as [number, number, number];
      const c = a.candidate[id]!;
      return [c[0]!, c[1]!, c[2]!] as [number, number, number];
    }),
    score: row[18]!,
  }));
}

/** OpenPose JSON as VITON-HD's openpose_json files hold it (pose_keypoints_2d: x, y, confidence x 18). */
export function toOpenPoseJson(people: Person[]): { version: number; people: { pose_keypoints_2d: number[] }[] } {
  return { version: 1.3, people: people.map((p) => ({ pose_keypoints_2d: p.keypoints.flat() })) };
}
