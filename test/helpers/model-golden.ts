import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';

const OUT = fileURLToPath(new URL('../golden/out/', import.meta.url));

/** A model golden file: weights under `weights/`, plus inputs, outputs and gradients under their own prefixes. */
export class ModelGolden {
  readonly tensors: Map<string, T.HostTensor>;
  readonly metadata: Record<string, string>;

  constructor(readonly name: string) {
    const path = `${OUT}${name}.safetensors`;
    if (!existsSync(path)) throw new Error(`golden file ${path} is missing: run \`npm run golden\``);
    const r = T.readSafetensors(new Uint8Array(readFileSync(path)), path);
    this.tensors = r.tensors;
    this.metadata = r.metadata;
  }

  host(key: string): T.HostTensor {
    const h = this.tensors.get(key);
    if (!h) throw new Error(`${this.name}: no tensor '${key}'`);
    return h;
  }

  tensor(key: string): T.Tensor {
    const h = this.host(key);
    return T.tensor(h.data, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
  }

  /** Tensors under `prefix/` as a state dict with the prefix removed. */
  stateDict(prefix = 'weights'): Map<string, T.Tensor> {
    const out = new Map<string, T.Tensor>();
    for (const key of this.tensors.keys()) {
      if (key.startsWith(`${prefix}/`)) out.set(key.slice(prefix.length + 1), this.tensor(key));
    }
    return out;
  }
}
