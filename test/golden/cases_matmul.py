"""Matmul shapes that stress the kernels' tiling: dims of 1, 3 and just past multiples of the 8 x 32 and
64 x 64 output tiles and the 8- and 16-deep K steps, every transpose combination, row/column bias and
batches with either operand broadcast."""
import torch
import torch.nn.functional as F

from golden import Group

DIMS = [(1, 3, 65), (3, 257, 1), (65, 127, 3), (127, 1, 257), (257, 65, 127), (65, 65, 65), (3, 1, 1), (9, 33, 17)]


def op(t, trans):
    return t.transpose(-1, -2) if trans else t


def build(out_dir):
    g = Group("matmul", seed=7)
    r = g.randn

    # -- matmul forward and both gradients (backward runs the transposed kernels)
    for m, n, k in DIMS:
        g.case(f"matmul_{m}x{n}x{k}", "matmul", [r(m, k), r(k, n)], torch.matmul)
    g.case("matmul_batched", "matmul", [r(2, 65, 127), r(2, 127, 33)], torch.matmul)
    g.case("matmul_broadcast_a", "matmul", [r(127, 9), r(3, 9, 65)], torch.matmul)
    g.case("matmul_broadcast_b", "matmul", [r(3, 33, 257), r(257, 3)], torch.matmul)
    g.case("matmul_batch_of_rows", "matmul", [r(5, 1, 65), r(5, 65, 1)], torch.matmul)
    g.case("linear_bias", "linear", [r(2, 65, 127), r(33, 127), r(33)], F.linear)
    g.case("linear_odd", "linear", [r(257, 3), r(65, 3), r(65)], F.linear)

    # -- the raw gemm: op(A) @ op(B) (+ bias) with every flag (forward only: gemm is not differentiable)
    no_grad = [False, False, False]
    for ta in (False, True):
        for tb in (False, True):
            for m, n, k in [(65, 127, 257), (3, 33, 8), (257, 1, 9), (12, 36, 16)]:
                a = r(k, m) if ta else r(m, k)
                b = r(n, k) if tb else r(k, n)
                name = f"gemm_{'t' if ta else 'n'}{'t' if tb else 'n'}_{m}x{n}x{k}"
                attrs = {"transA": ta, "transB": tb, "batch": 1, "M": m, "N": n, "K": k}
                g.case(name, "gemm", [a, b], lambda x, y: op(x, ta) @ op(y, tb), attrs=attrs, grad=no_grad)
            # batched, B shared by the batch, with a column bias
            a = r(2, 9, 65) if ta else r(2, 65, 9)
            b = r(127, 9) if tb else r(9, 127)
            bias = r(127)
            attrs = {"transA": ta, "transB": tb, "batch": 2, "M": 65, "N": 127, "K": 9, "broadcastB": True, "biasMode": "col"}
            g.case(f"gemm_{'t' if ta else 'n'}{'t' if tb else 'n'}_batched_colbias", "gemm", [a, b, bias],
                   lambda x, y, z: op(x, ta) @ op(y, tb) + z, attrs=attrs, grad=no_grad)
            # A shared by the batch, with a row bias (1x1 convolution layout)
            a = r(33, 17) if ta else r(17, 33)
            b = r(3, 65, 33) if tb else r(3, 33, 65)
            bias = r(17)
            attrs = {"transA": ta, "transB": tb, "batch": 3, "M": 17, "N": 65, "K": 33, "broadcastA": True, "biasMode": "row"}
            g.case(f"gemm_{'t' if ta else 'n'}{'t' if tb else 'n'}_batched_rowbias", "gemm", [a, b, bias],
                   lambda x, y, z: op(x, ta) @ op(y, tb) + z[:, None], attrs=attrs, grad=no_grad)
    return [g.save(out_dir)]
