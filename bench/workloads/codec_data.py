"""Snapshots for bench/codec.sh: pairs of files OLD NEW (the same bytes before and after one
change) in the directory argv[1], named <case>.old / <case>.new, with the lane to code them
with in <case>.lane. Cases:
  sgd-lr1e-2, sgd-lr1e-3  all parameters of the 6.3M-parameter MLP of bench/large.sh (float32)
                          before and after one SGD step at that learning rate (after 3 steps
                          on the same batch); in <case>.prev, the parameters a step earlier
  sgd-batches             the same at 1e-2 with a new batch each step (as bench/large.sh)
  sgd-momentum, adam      the same with SGD momentum 0.9, and with Adam (lr 1e-3)
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

def train(case, make_opt, batches):
    """Four steps of the MLP, each on the next of `batches` random batches; saves the last
    step as case.old/.new, and the parameters a step before .old as case.prev."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(),
                            torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                            torch.nn.Linear(2048, 10))
    opt = make_opt(m.parameters())
    xs = [torch.randn(32, 1024) for _ in range(batches)]
    ys = [torch.randint(0, 10, (32,)) for _ in range(batches)]

    def flat():
        return np.concatenate([p.detach().numpy().ravel().copy() for p in m.parameters()])

    snaps = []
    for i in range(4):
        snaps.append(flat())
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xs[i % batches]), ys[i % batches]).backward()
        opt.step()
    save(case, snaps[3], flat(), 4)
    snaps[2].tofile(os.path.join(out, case + ".prev"))   # a step earlier: codec_entropy.py


if torch is not None:
    for lr in ("1e-2", "1e-3"):   # one batch throughout: full-batch descent
        train(f"sgd-lr{lr}", lambda ps, lr=lr: torch.optim.SGD(ps, lr=float(lr)), 1)
    # A new batch each step, as in bench/large.sh's model; with momentum; Adam.
    train("sgd-batches", lambda ps: torch.optim.SGD(ps, lr=1e-2), 4)
    train("sgd-momentum", lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9), 4)
    train("adam", lambda ps: torch.optim.Adam(ps, lr=1e-3), 4)

a = np.arange(1 << 17, dtype=np.float64)
save("f64-plus-one", a, a + 1, 8)
b = rng.integers(0, 256, 8 << 20, dtype=np.uint8)
b2 = b.copy()
where = rng.random(b.size) < 0.05
b2[where] = rng.integers(0, 256, int(where.sum()), dtype=np.uint8)
save("bytes-5pct", b, b2, 1)
img = (np.arange(8 << 20) % 251).astype(np.uint8)
save("image-plus-one", img, img + np.uint8(1), 1)
