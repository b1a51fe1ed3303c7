"""A toy training loop with a bug: one step corrupts a weight. memwatch finds which line."""
import memwatch

weights = bytearray(16)
memwatch.watch(weights, "weights")


def update(step):
    weights[step % 16] = (weights[step % 16] + step) % 256


def buggy_cleanup():
    weights[3:7] = b"\xff\xff\xff\xff"


for step in range(1, 6):
    update(step)
buggy_cleanup()
print("final weights:", weights.hex())
