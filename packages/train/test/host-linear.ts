/** x [n, i] row-major times w [o, i] transposed, on the host: [n, o] (an attention projection's reference). */
export function hostLinear(x: ArrayLike<number>, w: ArrayLike<number>, n: number, i: number, o: number): number[] {
  const y = new Array<number>(n * o).fill(0);
  for (let r = 0; r < n; r++)
    for (let c = 0; c < o; c++) for (let k = 0; k < i; k++) y[r * o + c]! += x[r * i + k]! * w[c * i + k]!;
  return y;
}
