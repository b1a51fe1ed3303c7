"""bench/large.sh's model: a 6.3M-parameter MLP (24 MiB of float32: 1024 -> 2048 -> 2048 ->
10), trained with SGD on random batches. argv: steps, watch (0|1), lr (default 1e-2), batch
(default 32). With watch, every parameter is watched (memwatch.watch(p.data, name)).
Prints the seconds the training steps took and the CPU seconds of this process (all its
threads) until then."""
import sys
import time

import torch

import memwatch

steps = int(sys.argv[1])
watch = sys.argv[2] == "1"
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-2
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(),
                            torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                            torch.nn.Linear(2048, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=lr)
if watch:
    for name, p in model.named_parameters():
        memwatch.watch(p.data, name)
xs = [torch.randn(batch, 1024) for _ in range(4)]
ys = [torch.randint(0, 10, (batch,)) for _ in range(4)]
start = time.perf_counter()
for i in range(steps):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xs[i % 4]), ys[i % 4])
    loss.backward()
    optimizer.step()
print(f"{time.perf_counter() - start:.6f} {time.process_time():.3f}")
