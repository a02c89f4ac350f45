import * as T from './packages/core/src/index.ts';
import { LEFFA_CONFIGS, LeffaModel } from './packages/models/src/index.ts';
const dev = await T.init();
const m = new LeffaModel(LEFFA_CONFIGS.tiny);
const B = 4;
const ref = T.randn([B, 4, 16, 12]);
const lat = { noisyLatent: T.randn([B, 4, 16, 12]), maskLatent: T.rand([B, 1, 16, 12]), maskedLatent: T.randn([B, 4, 16, 12]), densepose: T.randn([B, 3, 16, 12]) };
const t = [10, 200, 500, 900];
const step = () => T.tidy(() => { const o = m.predictNoise(lat, t, m.referenceFeatures(ref, t)); T.mean(T.square(o.sample)).backward(); m.zeroGrad(); });
step(); await dev.sync();
const times = await dev.profile(() => step());
const rows = [...times].map(([k, v]) => [k.split(':').slice(0, 3).join(':').slice(0, 50), v.ms, v.count] as const);
const agg = new Map<string, [number, number]>();
for (const [k, ms, c] of rows) { const a = agg.get(k) ?? [0, 0]; a[0] += ms; a[1] += c; agg.set(k, a); }
const total = [...agg.values()].reduce((s, v) => s + v[0], 0);
console.log('total GPU ms', total.toFixed(0));
for (const [k, [ms, c]] of [...agg].sort((a, b) => b[1][0] - a[1][0]).slice(0, 20)) console.log(ms.toFixed(1).padStart(8), String(c).padStart(5), k);
