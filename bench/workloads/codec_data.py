"""Snapshots for bench/codec.sh: pairs of files OLD NEW (the same bytes before and after one
change) in the directory argv[1], named <case>.old / <case>.new, with the lane to code them
with in <case>.lane. Cases:
  sgd-lr1e-2, sgd-lr1e-3  all parameters of the 6.3M-parameter MLP of bench/large.sh (float32)
                          before and after one SGD step at that learning rate (after 3 steps)
  f64-plus-one            a 1 MiB float64 array before and after `a += 1` (bench/attribution.sh)
  bytes-5pct              8 MiB of random bytes with 5% of them rewritten at random places
  image-plus-one          an 8 MiB uint8 image before and after `img += 1`"""
import os
import sys

import numpy as np

out = sys.argv[1]


def save(name, old, new, lane):
    old.tofile(os.path.join(out, name + ".old"))
    new.tofile(os.path.join(out, name + ".new"))
    with open(os.path.join(out, name + ".lane"), "w") as f:
        f.write(f"{lane}\n")


rng = np.random.default_rng(0)
try:
    import torch
except ImportError:
    print("bench: python3-torch is not installed: no SGD cases", file=sys.stderr)
    torch = None
if torch is not None:
    for lr in ("1e-2", "1e-3"):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(),
                                torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                torch.nn.Linear(2048, 10))
        opt = torch.optim.SGD(m.parameters(), lr=float(lr))
        x, y = torch.randn(32, 1024), torch.randint(0, 10, (32,))

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()

        def flat():
            return np.concatenate([p.detach().numpy().ravel().copy() for p in m.parameters()])

        for _ in range(3):
            step()
        before = flat()
        step()
        save(f"sgd-lr{lr}", before, flat(), 4)

a = np.arange(1 << 17, dtype=np.float64)
save("f64-plus-one", a, a + 1, 8)
b = rng.integers(0, 256, 8 << 20, dtype=np.uint8)
b2 = b.copy()
where = rng.random(b.size) < 0.05
b2[where] = rng.integers(0, 256, int(where.sum()), dtype=np.uint8)
save("bytes-5pct", b, b2, 1)
img = (np.arange(8 << 20) % 251).astype(np.uint8)
save("image-plus-one", img, img + np.uint8(1), 1)
