// Trains a small MLP to fit y = sin(3x) on [-1, 1] and prints the loss going down.
import * as T from '@leffa-webgpu/core';

await T.init();
const gen = new T.Generator(0);
const x = T.reshape(T.linspace(-1, 1, 256), [256, 1]);
const y = T.sin(T.mul(x, 3));
const params = [T.randn([1, 64], { generator: gen }), T.zeros([64]), T.randn([64, 1], { generator: gen, std: 0.1 }), T.zeros([1])];
for (const p of params) p.requiresGrad = true;
const [w1, b1, w2, b2] = params;
const optimizer = new T.SGD(params, { lr: 0.1 });

for (let step = 0; step <= 500; step++) {
  const loss = T.tidy(() => {
    const pred = T.add(T.matmul(T.tanh(T.add(T.matmul(x, w1), b1)), w2), b2);
    const l = T.mean(T.square(T.sub(pred, y)));
    optimizer.zeroGrad();
    l.backward();
    optimizer.step();
    return l.detach();
  });
  if (step % 100 === 0) console.log(`step ${step}  loss ${(await loss.item()).toFixed(5)}`);
  loss.dispose();
}
