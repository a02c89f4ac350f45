import * as T from '@leffa-webgpu/core';
import { flowField } from '@leffa-webgpu/models';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

const OPS: Record<string, OpAdapter> = {
  attention: ([q, k, v, mask], a) =>
    T.attention(q!, k!, v!, { ...(a.scale ? { scale: a.scale } : {}), ...(mask ? { mask } : {}) }),
  flow_field: ([q, k], a) => flowField(q!, k!, { height: a.height, width: a.width }, { tau: a.tau }),
  attention_map: ([q, k], a) => T.attentionMap(q!, k!, { tau: a.tau, headMean: a.headMean }),
  multi_head_attention: ([q, k, v], a) =>
    T.multiHeadAttention(q!, k!, v!, { heads: a.heads, ...(a.scale ? { scale: a.scale } : {}) }),
};

replayGoldenGroup('attention', OPS);
