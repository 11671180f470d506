"""Writes big.copc.laz (in the current folder): the six IGN sample tiles three times over (1,217,811
points, shifted 200 m in x each time) as a nine-node COPC file (every fourth point in the root,
the others in the level-1 octants), for timing `randla predict` on COPC input (BENCHMARKS.md,
session 15). Needs copclib, laspy with lazrs, numpy; run from the repository root."""
import copclib as copc, laspy, numpy as np, glob
xs=[];ys=[];zs=[];cl=[];it=[];rn=[];nr=[]
for k in range(3):
  for f in sorted(glob.glob('data/ign-lidar-hd/*.laz')):
    s = laspy.read(f)
    xs.append(np.array(s.x) + 200*k); ys.append(np.array(s.y)); zs.append(np.array(s.z)); cl.append(np.array(s.classification)); it.append(np.array(s.intensity)); rn.append(np.array(s.return_number)); nr.append(np.array(s.number_of_returns))
x,y,z,cls,inten,r,n = [np.concatenate(a) for a in (xs,ys,zs,cl,it,rn,nr)]
src = laspy.read('data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz')
h = src.header
w = copc.FileWriter("big.copc.laz", copc.CopcConfigWriter(7, copc.Vector3(*h.scales), copc.Vector3(*h.offsets), ""))
hdr = w.copc_config.las_header
mn = np.array([x.min(), y.min(), z.min()]); mx = np.array([x.max(), y.max(), z.max()]); side=(mx-mn).max()
hdr.min = copc.Vector3(*mn); hdr.max = copc.Vector3(*mx)
info = w.copc_config.copc_info; c = mn + side/2
info.center_x, info.center_y, info.center_z = c; info.halfsize = side/2; info.spacing = side/64
# level-3 nodes: 8x8x8 grid cells
cell = side/2
ix = np.minimum(((x-mn[0])/cell).astype(int),1); iy = np.minimum(((y-mn[1])/cell).astype(int),1); iz = np.minimum(((z-mn[2])/cell).astype(int),1)
key = np.where(np.arange(len(x)) % 4 == 0, 8, ix*4+iy*2+iz)
order = np.argsort(key, kind='stable')
ks = key[order]
bounds = np.flatnonzero(np.diff(ks))+1
for grp in np.split(order, bounds):
    k = key[grp[0]]
    pts = copc.Points(hdr)
    for i in grp:
        p = pts.CreatePoint(); p.x,p.y,p.z = float(x[i]),float(y[i]),float(z[i]); p.classification=int(cls[i]); p.intensity=int(inten[i]); p.return_number=int(r[i]); p.number_of_returns=int(n[i]); pts.AddPoint(p)
    w.AddNode(copc.VoxelKey(0,0,0,0) if k == 8 else copc.VoxelKey(1, int(k//4), int((k//2)%2), int(k%2)), pts)
# empty parents are needed? add root and level1/2 with no points is not allowed; copclib writes hierarchy
w.Close()
with laspy.CopcReader.open("big.copc.laz") as cr: print("points", len(cr.query()))
