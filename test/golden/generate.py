"""Writes every golden group to test/golden/out/. Run with Debian's python3-torch: /usr/bin/python3 generate.py"""
import importlib
import os
import pkgutil
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
OUT = os.path.join(HERE, "out")


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])
    start = time.time()
    for mod in sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("cases_")):
        group = mod[len("cases_"):]
        if only and group not in only:
            continue
        t0 = time.time()
        for item in importlib.import_module(mod).build(OUT):
            print(f"golden: {item[0]} ({item[1]} cases, {time.time() - t0:.1f}s)")
    print(f"golden: done in {time.time() - start:.1f}s (torch {torch.__version__})")


if __name__ == "__main__":
    main()
