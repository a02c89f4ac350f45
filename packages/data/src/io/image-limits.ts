/**
 * Decompression-bomb guard for image files: the dimensions a PNG (IHDR) or JPEG (SOF) header declares are read
 * and checked against a pixel limit before any pixel is decoded. A 100 KB file can declare 12000x12000 pixels
 * (over a gigabyte once decoded); such a file is refused with an error instead.
 */

/**
 * Default pixel limit: 50 megapixels (e.g. 8660x5773, more than any phone camera's photos). Decoding costs about
 * 8 bytes per pixel at its peak (RGBA plus the RGB result), so about 400 MB at the limit.
 */
export const DEFAULT_MAX_PIXELS = 50_000_000;

let defaultMaxPixels = DEFAULT_MAX_PIXELS;

/** Changes the limit used when a decode call gives none (the CLI's --max-pixels); returns the previous one. */
export function setDefaultMaxPixels(maxPixels: number): number {
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1)
    throw new Error(`maxPixels must be a positive integer, got ${maxPixels}`);
  const before = defaultMaxPixels;
  defaultMaxPixels = maxPixels;
  return before;
}

export const getDefaultMaxPixels = () => defaultMaxPixels;

/** The dimensions a PNG or JPEG declares in its header, or null when the header cannot be found. */
export function declaredSize(bytes: Uint8Array): { width: number; height: number } | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // PNG: the signature, then the IHDR chunk (length 13) first: width and height, big-endian u32.
  if (bytes.length >= 24 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    if (String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return null;
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  // JPEG: walk the marker segments up to a start-of-frame (SOF0..SOF15 but DHT C4, JPG C8, DAC CC).
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    let p = 2;
    while (p + 4 <= bytes.length) {
      if (bytes[p] !== 0xff) return null;
      const marker = bytes[p + 1]!;
      if (marker === 0xff) {
        p++; // fill byte
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        p += 2; // standalone markers have no length
        continue;
      }
      if (marker === 0xda || marker === 0xd9) return null; // scan data or the end before any frame header
      const len = view.getUint16(p + 2);
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        if (p + 9 > bytes.length) return null;
        return { height: view.getUint16(p + 5), width: view.getUint16(p + 7) };
      }
      if (len < 2) return null;
      p += 2 + len;
    }
  }
  return null;
}

/**
 * Throws when the image's declared dimensions are zero or over `maxPixels` (default: `DEFAULT_MAX_PIXELS`, or
 * what `setDefaultMaxPixels` set). Files whose header cannot be read are left to the decoder's own errors.
 */
export function checkDeclaredSize(bytes: Uint8Array, source: string, maxPixels = defaultMaxPixels): void {
  const size = declaredSize(bytes);
  if (!size) return;
  const { width, height } = size;
  if (width === 0 || height === 0)
    throw new Error(`${source}: the image declares ${width}x${height} pixels, an empty image`);
  if (width * height > maxPixels) {
    const mp = (n: number) => `${(n / 1e6).toFixed(1)} megapixels`;
    throw new Error(
      `${source}: the image declares ${width}x${height} pixels (${mp(width * height)}), over the limit of ${mp(maxPixels)}; ` +
        'not decoded (a decompression bomb, or a genuinely huge image: raise the limit with --max-pixels / DecodeOptions.maxPixels)',
    );
  }
}
