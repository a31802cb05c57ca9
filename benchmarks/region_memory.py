"""Memory of HINT's region collection as the data set grows.

Each size runs in a fresh subprocess (so peak RSS is its own); the table shows
the region bank's bytes and the process's peak RSS for 1x, 4x and 16x the
images, side by side, with their ratios to the smallest run. With the caps
reached, both stay flat.

    .venv/bin/python benchmarks/region_memory.py
"""

import json
import resource
import subprocess
import sys

import torch
from torch import nn

from captum_hint import HINT, ConceptHierarchy

SIZES = [64, 256, 1024]


def run(n_images: int) -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 8),
    ).eval()
    hierarchy = ConceptHierarchy.from_paths([f"{'a' if i < 4 else 'b'}/c{i}" for i in range(8)])

    def batches():  # generated on the fly: the data set itself is never in memory
        generator = torch.Generator().manual_seed(1)
        for _ in range(n_images // 32):
            yield torch.randn(32, 3, 24, 24, generator=generator), torch.randint(8, (32,), generator=generator)

    hint = HINT(model, "2", hierarchy, concepts=["a", "b"], saliency="gradient", max_regions_per_concept=2000,
                max_background=8000, shapley_kwargs={"n_permutations": 4}, n_regions=128, progress=False,
                classifier_kwargs={"epochs": 1, "min_steps": 10})
    hint.fit(batches())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"images": n_images, "bank_bytes": hint.bank_.nbytes, "peak_rss_mib": peak_kib / 1024,
            "seen": sum(hint.bank_.seen)}


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(json.dumps(run(int(sys.argv[1]))))
        raise SystemExit
    results = [json.loads(subprocess.run([sys.executable, __file__, str(n)], capture_output=True, text=True,
                                         check=True).stdout) for n in SIZES]
    base = results[0]
    print(f"{'images':>7} {'vectors offered':>16} {'bank MiB':>9} {'bank ratio':>11} {'peak RSS MiB':>13} {'RSS ratio':>10}")
    for r in results:
        print(f"{r['images']:>7} {r['seen']:>16} {r['bank_bytes'] / 2**20:>9.2f} {r['bank_bytes'] / base['bank_bytes']:>11.2f} "
              f"{r['peak_rss_mib']:>13.1f} {r['peak_rss_mib'] / base['peak_rss_mib']:>10.2f}")
