"""glibc's default malloc against :func:`~captum_hint.core.allocator.reuse_freed_memory`, side by side.

Each repeat times, in two fresh processes one after the other (the setting is
process-wide and cannot be undone), an out-of-place ReLU6 of a 77 MB tensor,
EfficientNet-Lite0's forward pass of 16 images, and a forward and backward
pass of the same batch; the ratio default / reused is taken per repeat from
the two processes timed in turn, and its median and range are printed with
each process's peak resident memory.

    .venv/bin/python benchmarks/allocator.py [--repeats 3]
"""

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from captum_hint.core.allocator import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reused" else False
torch.set_num_threads(2)
from captum_hint.datasets import load_model

def timed(run, n):
    run()
    start = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - start) / n

big = torch.randn(16, 96, 112, 112).contiguous(memory_format=torch.channels_last)
model = load_model("efficientnet-lite0").model
images = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))

def forward_backward():
    model(images.clone().requires_grad_()).sum().backward()

with torch.no_grad():
    relu6 = timed(lambda: torch.nn.functional.relu6(big), 20)
    forward = timed(lambda: model(images), 6)
both = timed(forward_backward, 4)
print(json.dumps({"applied": applied, "relu6": relu6, "forward": forward, "forward_backward": both,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [(run("default"), run("reused")) for _ in range(args.repeats)]
    if not runs[0][1]["applied"]:
        print("reuse_freed_memory() does not apply here (not glibc): nothing to compare")
        return
    print(f"2 threads, {args.repeats} repeats, each a fresh process per setting, timed in turn")
    print(f"{'step':<34} {'default ms':>11} {'reused ms':>10} {'ratio: median':>14} {'[min, max]':>13}")
    for key, label in [("relu6", "ReLU6 of 16 x 96 x 112 x 112"), ("forward", "forward, 16 images"),
                       ("forward_backward", "forward + backward, 16 images")]:
        ratios = sorted(d[key] / r[key] for d, r in runs)
        print(f"{label:<34} {1000 * statistics.median(d[key] for d, _ in runs):>11.1f} "
              f"{1000 * statistics.median(r[key] for _, r in runs):>10.1f} {statistics.median(ratios):>14.2f} "
              f"[{ratios[0]:.2f}, {ratios[-1]:.2f}]")
    print(f"peak resident memory: default {statistics.median(d['peak_mb'] for d, _ in runs):.0f} MB, "
          f"reused {statistics.median(r['peak_mb'] for _, r in runs):.0f} MB")


if __name__ == "__main__":
    main()
