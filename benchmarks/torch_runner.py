"""Times the PyTorch side of the benchmarks (see src/peers/torch.ts for the protocol).

A server on stdin/stdout, one JSON object per line, so that its timings can alternate with ours in one run:
- first line, the manifest: {cases: [{name, setup, run, inputs: [{file, shape}], out}]}. Each case's inputs are
  bound to x0, x1, ...; `setup` runs once, `run` is the body of the function timed. Every case is set up and run
  once, its result written to its `out` file (raw float32); the answer is {version, threads}.
- then any number of {case: index, reps, warmup}: the answer is {ms: [one time per rep]}.
It exits at the end of stdin. Between requests it only waits on stdin, so it never shares the cores with ours.
"""
import json
import os
import sys
import textwrap
import time

import numpy as np
import torch
import torch.nn.functional as F


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    manifest = json.loads(sys.stdin.readline())
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))  # every core, as the GPU-side peers get
    runs = []
    for case in manifest["cases"]:
        ns = {"torch": torch, "F": F, "np": np}
        for i, x in enumerate(case["inputs"]):
            ns[f"x{i}"] = torch.from_numpy(np.fromfile(x["file"], dtype="<f4").reshape(x["shape"]))
        exec(case["setup"], ns)
        exec("def _run():\n" + textwrap.indent(case["run"], "    "), ns)
        run = ns["_run"]
        # The first call's result is the one checked: stateful cases (optimizer steps) then compare one step.
        run().detach().to(torch.float32).contiguous().numpy().tofile(case["out"])
        runs.append(run)
    answer({"version": torch.__version__, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        request = json.loads(line)
        run = runs[request["case"]]
        for _ in range(request["warmup"]):
            run()
        times = []
        for _ in range(request["reps"]):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
        answer({"ms": times})


if __name__ == "__main__":
    main()
