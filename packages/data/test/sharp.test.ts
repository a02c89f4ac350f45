// The optional sharp fast path for JPEG against the pure-JS one (jpeg-js, resizeRgb): the same sizes and
// orientations, pixels within the tolerance the package README states. Skipped, with the reason printed, where
// sharp cannot be loaded; the pure-JS side of decodeImageAsync is tested either way.
import { describe, expect, it } from 'vitest';
import {
  type RgbImage,
  applyOrientation,
  decodeImage,
  decodeImageAsync,
  encodeJpeg,
  encodePng,
  fitWithin,
  loadSharp,
  resizeRgb,
} from '@leffa-webgpu/data';

const sharp = await loadSharp();
if (!sharp.available) console.log(`sharp.test: sharp comparisons skipped: sharp cannot be loaded (${sharp.reason})`);

/** A photo-like test image: gradients, a smooth pattern and Gaussian-ish noise (deterministic). */
function photo(width: number, height: number): RgbImage {
  let seed = 7;
  const noise = () => {
    let s = 0;
    for (let k = 0; k < 4; k++) s += (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    return (s - 2) * 14;
  };
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = [(255 * x) / width, (255 * y) / height, 127.5 + 127.5 * Math.sin(x / 23) * Math.cos(y / 31)];
      for (let c = 0; c < 3; c++)
        data[3 * (y * width + x) + c] = Math.max(0, Math.min(255, Math.round(v[c]! + noise())));
    }
  }
  return { width, height, data };
}

/** Mean and largest absolute difference, and the 99th percentile. */
function difference(a: RgbImage, b: RgbImage) {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  const counts = new Array<number>(256).fill(0);
  let sum = 0;
  a.data.forEach((v, i) => {
    const d = Math.abs(v - b.data[i]!);
    sum += d;
    counts[d]!++;
  });
  let seen = 0;
  const p99 = counts.findIndex((c) => (seen += c) >= 0.99 * a.data.length);
  return { mean: sum / a.data.length, p99, max: 255 - [...counts].reverse().findIndex((c) => c > 0) };
}

/** The tolerance the package README states for sharp against the pure-JS path. */
const DECODE = { mean: 1.5, p99: 6 };
const SHRUNK = { mean: 1.5, p99: 4 };
const within = (d: { mean: number; p99: number }, t: { mean: number; p99: number }) => {
  expect(d.mean).toBeLessThan(t.mean);
  expect(d.p99).toBeLessThanOrEqual(t.p99);
};

/** JPEG bytes with an EXIF APP1 segment holding `orientation` (little-endian TIFF, one IFD0 entry). */
function withOrientation(jpeg: Uint8Array, orientation: number): Uint8Array {
  const tiff = [0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, orientation, 0, 0, 0, 0, 0, 0, 0];
  const body = [0x45, 0x78, 0x69, 0x66, 0, 0, ...tiff];
  return new Uint8Array([
    ...jpeg.subarray(0, 2),
    0xff,
    0xe1,
    (body.length + 2) >> 8,
    (body.length + 2) & 255,
    ...body,
    ...jpeg.subarray(2),
  ]);
}

const image = photo(640, 480);
const jpeg = encodeJpeg(image, 90);

describe('decodeImageAsync without sharp', () => {
  it('is decodeImage, then resizeRgb to fitWithin when that shrinks', async () => {
    const plain = decodeImage(jpeg, 'p.jpg');
    expect(await decodeImageAsync(jpeg, 'p.jpg', { sharp: false })).toEqual(plain);
    const fit = fitWithin(480, 640, 192, 200);
    expect(fit).toEqual({ height: 150, width: 200 });
    expect(await decodeImageAsync(jpeg, 'p.jpg', { sharp: false, fit: { height: 192, width: 200 } })).toEqual(
      resizeRgb(plain, 150, 200),
    );
    // Already inside the box: left as it is (no enlarging), PNG included.
    expect(await decodeImageAsync(jpeg, 'p.jpg', { sharp: false, fit: { height: 1000, width: 1000 } })).toEqual(plain);
    const png = encodePng(image);
    expect(await decodeImageAsync(png, 'p.png', { fit: { height: 240, width: 240 } })).toEqual(
      resizeRgb(image, 180, 240),
    );
    const turned = withOrientation(jpeg, 6);
    expect(
      await decodeImageAsync(turned, 't.jpg', {
        sharp: false,
        exifOrientation: true,
        fit: { height: 320, width: 320 },
      }),
    ).toEqual(resizeRgb(applyOrientation(plain, 6), 320, 240));
  });
});

describe.skipIf(!sharp.available)('sharp against the pure-JS path', () => {
  it('decodes to the same size within the stated tolerance', async () => {
    const js = decodeImage(jpeg, 'p.jpg');
    const native = await decodeImageAsync(jpeg, 'p.jpg');
    within(difference(native, js), DECODE);
    // And sharp is as close to the encoded pixels as jpeg-js is (the rest is the JPEG's own loss).
    expect(difference(native, image).mean).toBeLessThan(difference(js, image).mean + 0.5);
  });

  it('shrinks to fitWithin within the stated tolerance', async () => {
    for (const fit of [
      { height: 192, width: 256 },
      { height: 300, width: 300 },
      { height: 479, width: 639 },
    ]) {
      const js = await decodeImageAsync(jpeg, 'p.jpg', { sharp: false, fit });
      const native = await decodeImageAsync(jpeg, 'p.jpg', { fit });
      within(difference(native, js), SHRUNK);
    }
  });

  it('turns every EXIF orientation upright as applyOrientation does', async () => {
    const small = encodeJpeg(photo(96, 64), 95);
    for (let o = 1; o <= 8; o++) {
      const tagged = withOrientation(small, o);
      const js = await decodeImageAsync(tagged, 'o.jpg', {
        sharp: false,
        exifOrientation: true,
        fit: { height: 40, width: 40 },
      });
      const native = await decodeImageAsync(tagged, 'o.jpg', { exifOrientation: true, fit: { height: 40, width: 40 } });
      expect([native.width, native.height], `orientation ${o}`).toEqual(o >= 5 ? [27, 40] : [40, 27]);
      within(difference(native, js), SHRUNK);
      // Without the option the stored pixels are read, as by jpeg-js.
      const stored = await decodeImageAsync(tagged, 'o.jpg');
      expect([stored.width, stored.height]).toEqual([96, 64]);
    }
  });

  it('refuses a decompression bomb from the header and names unreadable bytes', async () => {
    const bomb = encodeJpeg({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(128) });
    const sof = Buffer.from(bomb).indexOf(Buffer.from([0xff, 0xc0]));
    new DataView(bomb.buffer, bomb.byteOffset).setUint16(sof + 5, 12000);
    new DataView(bomb.buffer, bomb.byteOffset).setUint16(sof + 7, 12000);
    await expect(decodeImageAsync(bomb, 'bomb.jpg')).rejects.toThrow(
      /bomb\.jpg: the image declares 12000x12000 pixels \(144\.0 megapixels\), over the limit/,
    );
    const cut = jpeg.slice(0, 600);
    await expect(decodeImageAsync(cut, 'cut.jpg')).rejects.toThrow(/cut\.jpg: not a readable JPEG \(sharp: /);
  });
});
