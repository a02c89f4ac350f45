"""Times the PyTorch side of the benchmarks (see src/peers/torch.ts for the protocol).

Reads a JSON manifest on stdin: {reps, warmup, cases: [{name, setup, run, inputs: [{file, shape}], out}]}.
Each case's inputs are bound to x0, x1, ...; `setup` runs once, `run` is the body of the function timed.
Writes each result to its `out` file (raw float32) and prints {version, threads, cases: [{name, ms}]}.
"""
import json
import os
import statistics
import sys
import textwrap
import time

import numpy as np
import torch
import torch.nn.functional as F


def main():
    spec = json.load(sys.stdin)
    results = []
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))  # every core, as the GPU-side peers get
    for case in spec["cases"]:
        ns = {"torch": torch, "F": F, "np": np}
        for i, x in enumerate(case["inputs"]):
            ns[f"x{i}"] = torch.from_numpy(np.fromfile(x["file"], dtype="<f4").reshape(x["shape"]))
        exec(case["setup"], ns)
        exec("def _run():\n" + textwrap.indent(case["run"], "    "), ns)
        run = ns["_run"]
        # The first call's result is the one checked: stateful cases (optimizer steps) then compare one step.
        out = run().detach().to(torch.float32).contiguous().numpy().copy()
        for _ in range(spec["warmup"]):
            run()
        times = []
        for _ in range(spec["reps"]):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
        out.tofile(case["out"])
        results.append({"name": case["name"], "ms": statistics.median(times)})
    json.dump({"version": torch.__version__, "threads": torch.get_num_threads(), "cases": results}, sys.stdout)


if __name__ == "__main__":
    main()
