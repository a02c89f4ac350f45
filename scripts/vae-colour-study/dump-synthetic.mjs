// Writes synthetic people and their garments (128x96 RGB) as raw uint8 [n, 2, 128, 96, 3] for the PyTorch replica.
// usage: node scripts/vae-colour-study/dump-synthetic.mjs <n> <first seed> <out file>
import { writeFileSync } from 'node:fs';
import { generateSample } from '@leffa-webgpu/data';

const [n, first, out] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const [H, W] = [128, 96];
const buffer = new Uint8Array(n * 2 * H * W * 3);
for (let i = 0; i < n; i++) {
  const s = generateSample({ seed: first + i, height: H, width: W });
  buffer.set(s.person.image, 2 * i * H * W * 3);
  buffer.set(s.garment, (2 * i + 1) * H * W * 3);
}
writeFileSync(out, buffer);
