/**
 * Node: Leffa's released human parsers, `humanparsing/parsing_atr.onnx` and `humanparsing/parsing_lip.onnx`
 * (SCHP exports run by ONNX Runtime in Leffa's preprocess/humanparsing), loaded onto the library's ONNX executor.
 */
import { readFileSync, statSync } from 'node:fs';
import * as T from '@leffa-webgpu/core';
import { LeffaHumanParsing, OnnxGraph } from '@leffa-webgpu/models';

function readGraph(path: string, what: string): OnnxGraph {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e) {
    throw new Error(
      `${what} '${path}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (e as Error).message}`,
    );
  }
  if (size < 16) throw new Error(`${what} '${path}': ${size} bytes is not an ONNX model`);
  try {
    return OnnxGraph.fromBytes(new Uint8Array(readFileSync(path)));
  } catch (e) {
    throw new Error(`${what} '${path}': ${(e as Error).message}`);
  }
}

/**
 * Leffa's `Parsing(atr_path, lip_path)`: both graphs are read and checked (every node must be one the executor
 * runs) before anything is returned; `parse(image)` then gives the ATR parse map with neck (18) and the face
 * mask as parsing_api.onnx_inference does. The input sizes come from the files (512x512 ATR, 473x473 LIP).
 */
export async function loadLeffaHumanParsing(atrPath: string, lipPath: string): Promise<LeffaHumanParsing> {
  await T.init();
  const atr = readGraph(atrPath, 'ATR human parser');
  let lip: OnnxGraph;
  try {
    lip = readGraph(lipPath, 'LIP human parser');
  } catch (e) {
    atr.dispose();
    throw e;
  }
  return new LeffaHumanParsing(atr, lip);
}
