/**
 * The label sets of SCHP's released models (simple_extractor.py's dataset_settings), with the left/right
 * pairs that a horizontal flip exchanges, and the palette its visualisation uses.
 */
export interface SCHPLabelSet {
  name: 'lip' | 'atr' | 'pascal';
  /** Network input [height, width]. */
  inputSize: [number, number];
  labels: readonly string[];
  /** Channel pairs swapped when a prediction is mirrored. */
  flipPairs: readonly (readonly [number, number])[];
}

export const LIP_LABELS: SCHPLabelSet = {
  name: 'lip',
  inputSize: [473, 473],
  labels: [
    'Background',
    'Hat',
    'Hair',
    'Glove',
    'Sunglasses',
    'Upper-clothes',
    'Dress',
    'Coat',
    'Socks',
    'Pants',
    'Jumpsuits',
    'Scarf',
    'Skirt',
    'Face',
    'Left-arm',
    'Right-arm',
    'Left-leg',
    'Right-leg',
    'Left-shoe',
    'Right-shoe',
  ],
  // evaluate.py: flipped_idx = (15, 14, 17, 16, 19, 18) over channels 14..19.
  flipPairs: [
    [14, 15],
    [16, 17],
    [18, 19],
  ],
};

export const ATR_LABELS: SCHPLabelSet = {
  name: 'atr',
  inputSize: [512, 512],
  labels: [
    'Background',
    'Hat',
    'Hair',
    'Sunglasses',
    'Upper-clothes',
    'Skirt',
    'Pants',
    'Dress',
    'Belt',
    'Left-shoe',
    'Right-shoe',
    'Face',
    'Left-leg',
    'Right-leg',
    'Left-arm',
    'Right-arm',
    'Bag',
    'Scarf',
  ],
  // Not in the official evaluation (LIP only); the left/right names of this set.
  flipPairs: [
    [9, 10],
    [12, 13],
    [14, 15],
  ],
};

export const PASCAL_LABELS: SCHPLabelSet = {
  name: 'pascal',
  inputSize: [512, 512],
  labels: ['Background', 'Head', 'Torso', 'Upper Arms', 'Lower Arms', 'Upper Legs', 'Lower Legs'],
  flipPairs: [],
};

export const SCHP_LABEL_SETS = { lip: LIP_LABELS, atr: ATR_LABELS, pascal: PASCAL_LABELS } as const;

/** The channel permutation that mirrors left/right labels (an involution). */
export function flipPermutation(numClasses: number, pairs: readonly (readonly [number, number])[]): number[] {
  const perm = Array.from({ length: numClasses }, (_, i) => i);
  for (const [a, b] of pairs) {
    if (a >= numClasses || b >= numClasses)
      throw new Error(`flipPermutation: pair (${a}, ${b}) outside ${numClasses} classes`);
    perm[a] = b;
    perm[b] = a;
  }
  return perm;
}

/**
 * SCHP's get_palette (the PASCAL VOC colour map): label j's bits, three at a time, fill R, G and B from the
 * most significant bit down. Returns RGB triples, one per label (0 = black).
 */
export function schpPalette(numClasses: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let j = 0; j < numClasses; j++) {
    const c: [number, number, number] = [0, 0, 0];
    for (let lab = j, i = 0; lab > 0; lab >>= 3, i++) {
      c[0] |= ((lab >> 0) & 1) << (7 - i);
      c[1] |= ((lab >> 1) & 1) << (7 - i);
      c[2] |= ((lab >> 2) & 1) << (7 - i);
    }
    out.push(c);
  }
  return out;
}

/** A label map (row-major) as RGB bytes (HWC) with SCHP's palette; labels outside the palette are white. */
export function colorizeLabels(labels: ArrayLike<number>, numClasses = 20): Uint8Array {
  const palette = schpPalette(numClasses);
  const out = new Uint8Array(labels.length * 3);
  for (let i = 0; i < labels.length; i++) out.set(palette[labels[i]!] ?? [255, 255, 255], 3 * i);
  return out;
}
