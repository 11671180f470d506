"""Regenerates the randla-geom fixtures from the IGN tile (needs `pip install laspy lazrs numpy`)."""
import laspy
import numpy as np

f = laspy.read("../../../../data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz")
x, y, z = np.asarray(f.x), np.asarray(f.y), np.asarray(f.z)
c = np.asarray(f.classification)
m = (x < 770625) & (y < 6277575)
pts = np.stack([x[m] - 770600.0, y[m] - 6277550.0, z[m]], 1).astype("<f4")
pts.tofile("ign_77060_627760_sw_quarter.xyz.f32")
c[m].astype("u1").tofile("ign_77060_627760_sw_quarter.class.u8")
