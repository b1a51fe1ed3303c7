# A Python loop driving small numpy operations: interpreter and numpy call overhead
# (bench/interpreter.sh).
import numpy

a = numpy.zeros(64)
b = numpy.arange(64, dtype=numpy.float64)
acc = 0.0
for i in range(800_000):
    a[i % 64] += b[i % 64] * 0.5
    if i % 8 == 0:
        acc += float(a.sum())
print(acc)
