import { tensor, zeros } from '../forward/creation.js';
import { dispose } from '../tensor/scope.js';
import { eq, where } from '../ops/elementwise.js';
import { embedding } from '../ops/indexing.js';
import { type Generator, randn } from '../ops/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

export interface EmbeddingOptions {
  /**
   * An index whose row gets no gradient and starts as zeros (torch's padding_idx; negative counts from the
   * end). Its row is still looked up as it is, so loaded weights are used unchanged.
   */
  paddingIdx?: number;
  generator?: Generator;
}

/** torch.nn.Embedding: a [numEmbeddings, embeddingDim] table, N(0, 1) initialised, looked up by int32 indices. */
export class Embedding extends Module {
  readonly weight: Tensor;
  readonly paddingIdx: number | null;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: EmbeddingOptions = {},
  ) {
    super();
    for (const [name, v] of [
      ['numEmbeddings', numEmbeddings],
      ['embeddingDim', embeddingDim],
    ] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Embedding: ${name} must be a positive integer, got ${v}`);
    }
    const p = options.paddingIdx;
    if (p !== undefined && (!Number.isInteger(p) || p < -numEmbeddings || p >= numEmbeddings)) {
      throw new Error(`Embedding: paddingIdx ${p} is out of range for ${numEmbeddings} embeddings`);
    }
    this.paddingIdx = p === undefined ? null : p < 0 ? p + numEmbeddings : p;
    let w = randn([numEmbeddings, embeddingDim], options.generator ? { generator: options.generator } : {});
    if (this.paddingIdx !== null) {
      // PyTorch's weight[padding_idx].fill_(0): a select, so the row is +0 (multiplying by 0 would give -0).
      const keepRows = new Float32Array(numEmbeddings).fill(1);
      keepRows[this.paddingIdx] = 0;
      const m = tensor(keepRows, [numEmbeddings, 1]);
      const zero = zeros([1, 1]);
      const zeroed = where(m, w, zero);
      dispose([w, m, zero]);
      w = zeroed;
    }
    this.weight = this.addParameter('weight', w);
  }

  /** Rows of the table for int32 `indices` of any shape: [...indices.shape, embeddingDim]. */
  forward(indices: Tensor): Tensor {
    const rows = embedding(indices, this.weight);
    if (this.paddingIdx === null) return rows;
    // Same values; the padding positions take the detached rows, so no gradient reaches the padding row.
    const mask = eq(indices.reshape([...indices.shape, 1]), this.paddingIdx);
    return where(mask, rows.detach(), rows);
  }
}
