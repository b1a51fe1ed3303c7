"""What lossless coding can keep of a float32 update, for bench/codec.sh: for each training
case in the directory argv[1] (<case>.old, .new, .prev, lane 4), the order-0 entropy of each
byte plane of zigzag(new - old) (what a per-plane entropy coder such as zstd's Huffman stage
can reach at best), and of the same numbers as a bit length plus the bits below the top
one, alone and given the old value's exponent; then, against <case>.prev (the step before),
how often the two steps' differences have the same sign, and the byte planes' entropy of
the difference coded against the step before's. Shares of the raw new bytes."""
import glob
import os
import sys

import numpy as np


def entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


for old_path in sorted(glob.glob(os.path.join(sys.argv[1], "*.prev"))):
    old_path = old_path[:-5] + ".old"
    case = os.path.basename(old_path)[:-4]
    old = np.fromfile(old_path, dtype=np.uint32).astype(np.int64)
    new = np.fromfile(old_path[:-4] + ".new", dtype=np.uint32).astype(np.int64)
    d = (new - old + 2**31) % 2**32 - 2**31
    z = np.where(d >= 0, 2 * d, -2 * d - 1)
    planes = [entropy(np.bincount((z >> (8 * j)) & 255, minlength=256)) for j in range(4)]
    length = np.zeros(z.size, dtype=np.int64)
    nz = z > 0
    length[nz] = np.floor(np.log2(z[nz].astype(np.float64))).astype(np.int64) + 1
    below = float(np.maximum(length - 1, 0).mean())
    exp = (old >> 23) & 255
    given_exp = entropy(np.bincount(exp * 64 + length)) - entropy(np.bincount(exp))
    print(f"== {case}: entropy floor, share of the raw new bytes")
    print("  byte planes (order 0)        " + " + ".join(f"{h:.2f}" for h in planes) +
          f" bits = {100 * sum(planes) / 32:.1f} %")
    print(f"  bit length + bits below      {entropy(np.bincount(length)) + below:.2f} bits = "
          f"{100 * (entropy(np.bincount(length)) + below) / 32:.1f} %")
    print(f"  the same, given the exponent {given_exp + below:.2f} bits = "
          f"{100 * (given_exp + below) / 32:.1f} %")
    prev_path = old_path[:-4] + ".prev"
    prev = np.fromfile(prev_path, dtype=np.uint32).astype(np.int64)
    d0 = (old - prev + 2**31) % 2**32 - 2**31
    moved = (d != 0) & (d0 != 0)
    same = float(np.mean(np.sign(d[moved]) == np.sign(d0[moved])))
    dd = d - d0
    zz = np.where(dd >= 0, 2 * dd, -2 * dd - 1)
    against = sum(entropy(np.bincount((zz >> (8 * j)) & 255, minlength=256)) for j in range(5))
    print(f"  against the step before      same sign {100 * same:.1f} %; byte planes "
          f"{against:.2f} bits = {100 * against / 32:.1f} %")
