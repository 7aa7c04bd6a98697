"""Issue #25's ratios: SW-LK 7³ / SubMConv3d 3³ and SubMConv3d 7³ / 3³ forward (``torch.no_grad``, every call builds
its kernel map), medians of alternating rounds, per input of ``common.load_inputs`` plus a PandaSet frame.

Usage: ``python benchmarks/lk_ratios.py REPS THREADS CHANNELS [NAME_FILTER]``, e.g. ``... 7 1,2 32,64``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import SHARED_DATA, SparseInput, load_inputs, num_threads, time_alternating, voxel_sites  # noqa: E402

from largekernel3d.nn import SWLKConv3d  # noqa: E402
from largekernel3d.sparse import SparseConvTensor, SubMConv3d, keep_freed_memory  # noqa: E402

keep_freed_memory()
reps = int(sys.argv[1])
threads = [int(t) for t in sys.argv[2].split(",")]
chans = [int(c) for c in sys.argv[3].split(",")]
only = sys.argv[4] if len(sys.argv) > 4 else ""
inputs = load_inputs(False)
try:
    from largekernel3d.data.detection import PandaSetDetection

    fr = PandaSetDetection(SHARED_DATA / "pandaset", frames=[0])[0]
    idx, shape = voxel_sites(np.asarray(fr.points)[:, :3], (0.075, 0.075, 0.2), (2, 1, 0))
    inputs.append(SparseInput("PandaSet 002/00 0.075×0.075×0.2 m", idx, shape, ""))
except (ImportError, OSError, IndexError) as e:  # no PandaSet sample (or pandas)
    print("pandaset skipped", e)
for inp in inputs:
    if only and only not in inp.name:
        continue
    for c in chans:
        torch.manual_seed(0)
        feats = torch.randn(inp.num_sites, c)

        def T(feats=feats, inp=inp):
            return SparseConvTensor(feats, inp.indices, list(inp.spatial_shape), 1, validate=False)

        sw, c3, c7 = SWLKConv3d(c, c, 7), SubMConv3d(c, c, 3, bias=False), SubMConv3d(c, c, 7, bias=False)
        for t in threads:
            with num_threads(t), torch.no_grad():
                r = time_alternating(
                    {
                        "sw7": lambda: sw(T()),
                        "c3": lambda: c3(T()),  # noqa: B023
                        "c7": lambda: c7(T()),
                    },
                    reps,
                )  # noqa: B023
            print(
                f"{inp.name:38s} {inp.num_sites:7d} C={c:3d} thr={t}  sw7 {r['sw7']:7.1f}  c3 {r['c3']:6.1f}  "
                f"c7 {r['c7']:7.1f}  sw7/c3 {r['sw7'] / r['c3']:.2f}  c7/c3 {r['c7'] / r['c3']:.2f}",
                flush=True,
            )
