"""Sorting, indexing and the Lovasz-softmax loss (SCHP): bitonic sort, gather / index_select / embedding with
scatter-add backward, one-hot, and a plain-torch Lovasz reference written from Berman et al. (2018)."""
import math

import torch
import torch.nn.functional as F

from golden import Group


def build_indexing(g):
    r = g.randn
    # Sorting (distinct values, so the order is unique): lengths below, at and above a power of two and the
    # 1024-element workgroup block, rows > 1.
    for name, shape, axis, desc in [
        ("sort_last_asc", (3, 7), -1, False),
        ("sort_last_desc", (4, 16), -1, True),
        ("sort_mid_axis", (2, 9, 3), 1, False),
        ("sort_long_rows", (2, 3000), -1, True),
        ("sort_single", (5, 1), -1, False),
    ]:
        x = torch.randperm(math.prod(shape), generator=g.gen).float().reshape(shape) * 0.37 - 40.0
        g.case(name, "sort", [x], lambda t, axis=axis, desc=desc: torch.sort(t, dim=axis, descending=desc),
               attrs={"axis": axis, "descending": desc})

    x = r(3, 5, 4)
    g.case("gather_axis1", "gather", [x, g.randint(5, 3, 7, 4)], lambda t, i: torch.gather(t, 1, i), attrs={"axis": 1})
    g.case("gather_axis_last_smaller", "gather", [r(4, 6), g.randint(6, 2, 9)], lambda t, i: torch.gather(t, -1, i), attrs={"axis": -1})
    g.case("gather_axis0_repeats", "gather", [r(3, 4), torch.tensor([[0, 0, 2, 1], [2, 2, 2, 0]])], lambda t, i: torch.gather(t, 0, i),
           attrs={"axis": 0})
    g.case("index_select_axis0", "index_select", [r(6, 5), torch.tensor([4, 0, 4, 2, 5])], lambda t, i: torch.index_select(t, 0, i),
           attrs={"axis": 0})
    g.case("index_select_mid", "index_select", [r(2, 7, 3), torch.tensor([6, 1, 1])], lambda t, i: torch.index_select(t, 1, i),
           attrs={"axis": 1})
    g.case("index_select_last", "index_select", [r(3, 4, 5), torch.tensor([3, 0])], lambda t, i: torch.index_select(t, -1, i),
           attrs={"axis": -1})
    g.case("embedding", "embedding", [torch.tensor([[1, 4, 4], [0, 9, 1]]), r(10, 6)], lambda i, w: F.embedding(i, w))
    g.case("one_hot", "one_hot", [torch.tensor([[0, 3], [2, 2], [1, 4]])], lambda t: F.one_hot(t, 5).float(), attrs={"classes": 5})


def lovasz_grad_ref(fg_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss at errors sorted in descending order
    (Berman et al. 2018, Algorithm 1): increments of the Jaccard loss of the growing prefix."""
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_softmax_ref(probas, labels, classes, ignore):
    """Mean over classes of <sorted errors, Lovasz gradient>, ignored pixels removed (0 if no class counts)."""
    C = probas.shape[1]
    p = probas.movedim(1, -1).reshape(-1, C)
    lab = labels.reshape(-1)
    keep = lab != ignore
    p, lab = p[keep], lab[keep]
    losses = []
    for c in range(C):
        fg = (lab == c).float()
        if classes == "present" and fg.sum() == 0:
            continue
        errors, perm = torch.sort((fg - p[:, c]).abs(), descending=True)
        losses.append(torch.dot(errors, lovasz_grad_ref(fg[perm])))
    return torch.stack(losses).mean() if losses else probas.sum() * 0.0


def build_lovasz(g):
    def labels(n, h, w, classes, ignore, p_ignore=0.2):
        t = g.randint(classes, n, h, w)
        t[g.rand(n, h, w) < p_ignore] = ignore
        return t

    probas = lambda *s: (g.randn(*s) * 2).softmax(1)
    cases = [
        # name, probas shape, classes used by the labels (the rest are absent), mode, ignore index
        ("lovasz_present_absent_classes", (3, 6, 7, 5), 4, "present", 255),
        ("lovasz_all_classes", (3, 6, 7, 5), 4, "all", 255),
        ("lovasz_multi_block", (2, 5, 24, 25), 5, "present", 255),
        ("lovasz_ignore_minus1", (2, 3, 4, 3), 3, "present", -1),
        ("lovasz_batch1", (1, 4, 1, 9), 4, "all", 255),
    ]
    for name, shape, used, mode, ignore in cases:
        n, c, h, w = shape
        g.case(name, "lovasz_softmax", [probas(*shape), labels(n, h, w, used, ignore)],
               lambda pr, lb, mode=mode, ignore=ignore: lovasz_softmax_ref(pr, lb, mode, ignore),
               attrs={"classes": mode, "ignoreIndex": ignore})
    g.case("lovasz_all_ignored", "lovasz_softmax", [probas(2, 3, 2, 2), torch.full((2, 2, 2), 255)],
           lambda pr, lb: lovasz_softmax_ref(pr, lb, "present", 255), attrs={"classes": "present", "ignoreIndex": 255})



def build(out_dir):
    g = Group("indexing", seed=12)
    build_indexing(g)
    build_lovasz(g)
    return [g.save(out_dir)]
