# Dict and string work: hashing, formatting, splitting, joining (bench/interpreter.sh).
counts = {}
words = []
for i in range(900_000):
    key = f"key-{i % 5000}-{i % 7}"
    counts[key] = counts.get(key, 0) + 1
    if i % 3 == 0:
        words.append(key.upper().replace("-", "_"))
text = " ".join(words)
parts = text.split(" ")
index = {w: n for n, w in enumerate(sorted(set(parts)))}
total = sum(len(k) * v for k, v in counts.items())
print(len(counts), len(parts), len(index), total)
