"""Writes the 10,148,425-point LAS of issue 7's throughput goal (BENCHMARKS.md, "Whole-cloud
prediction"): the six IGN sample tiles (a 150 m × 100 m block) laid out 5 × 5, copy (i, j) shifted
by (150 i, 100 j) metres, copies in the order i then j, the tiles of a copy in name order; every
dimension of point format 8 kept, scale 0.01 m, offsets 0.

Usage (from the repository root; needs laspy with lazrs, and numpy):
    python3 scripts/bench/make_big_las.py /tmp/big10m.las
then `randla predict /tmp/big10m.las -o OUT/` and `randla eval OUT/big10m.las /tmp/big10m.las
--map 3=5,4=5,64=1`.
"""
import glob
import sys

import laspy
import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "big10m.las"
tiles = [laspy.read(f) for f in sorted(glob.glob("data/ign-lidar-hd/*.laz"))]
if len(tiles) != 6:
    sys.exit(f"expected the six tiles of data/ign-lidar-hd/, found {len(tiles)}: run from the repository root")
header = laspy.LasHeader(point_format=8, version="1.4")
header.scales = np.array([0.01, 0.01, 0.01])
header.offsets = np.array([0.0, 0.0, 0.0])
per_copy = sum(len(t.points) for t in tiles)
big = laspy.LasData(header)
big.points = laspy.ScaleAwarePointRecord.zeros(25 * per_copy, header=header)
names = [d for d in tiles[0].point_format.dimension_names if d not in ("X", "Y", "Z")]
at = 0
for i in range(5):
    for j in range(5):
        for t in tiles:
            n = len(t.points)
            big.x[at:at + n] = np.asarray(t.x) + 150.0 * i
            big.y[at:at + n] = np.asarray(t.y) + 100.0 * j
            big.z[at:at + n] = np.asarray(t.z)
            for d in names:
                big[d][at:at + n] = t[d]
            at += n
big.update_header()
big.write(out)
print(f"{out}: {at} points")
