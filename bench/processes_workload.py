"""Workload of bench/processes.sh: a 1 MiB shared block (anonymous MAP_SHARED) written line
by line, one 8-byte write per line, each on the next page, each a new value.

usage: processes_workload.py single|pool|named|startup N watch|plain

single: this process writes N lines. pool: a multiprocessing Pool of 2 fork workers, each
writes N/2 lines (its own bytes of each page). named: the same with a SharedMemory block
the workers attach by name (mapped again in each, at its own address: memwatch watches it
there because the parent watches it). Prints the summed seconds of the writing loops (each
timed inside its own process) and the lines written.

startup: starts N children `sys.executable -c pass` one after the other (subprocess.run:
the exec'd child of a traced script is traced, and watches nothing); prints the median
seconds from the start of subprocess.run to its return, N, and the children's mean CPU
seconds (user + system)."""
import mmap
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import time

SIZE = 1 << 20
PAGE = 4096
block = mmap.mmap(-1, SIZE)


# A new value each time a page comes round again (256 pages; 256 % 251 != 0).
VALUES = [bytes([v % 251 + 1]) * 8 for v in range(251)]


def write_lines(worker, n, name=None):
    if name:
        from multiprocessing import shared_memory
        shm = shared_memory.SharedMemory(name=name)
        buf = shm.buf
    else:
        buf = block
    t0 = time.perf_counter()
    for i in range(n):
        off = (i * PAGE) % SIZE + worker * 64
        buf[off:off + 8] = VALUES[i % 251]
    seconds = time.perf_counter() - t0
    if name:
        del buf
        shm.close()
    return seconds


def child_startups(n):
    """The median wall time of a child's subprocess.run, and the children's mean CPU time
    (user + system: less sensitive than wall time to a busy machine)."""
    took = []
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        took.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / n
    return statistics.median(took), cpu


def main():
    mode, n, watch = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "watch"
    if mode == "startup":
        wall, cpu = child_startups(n)
        print(f"{wall:.6f} {n} {cpu:.6f}")
        return
    name = shm = None
    watched = block
    if mode == "named":
        from multiprocessing import shared_memory
        shm = shared_memory.SharedMemory(create=True, size=SIZE)
        name, watched = shm.name, shm.buf
    if watch:
        import memwatch
        memwatch.watch(watched, "block")
    if mode == "single":
        seconds = write_lines(0, n)
    else:
        with mp.get_context("fork").Pool(2) as pool:
            seconds = sum(pool.starmap(write_lines, [(0, n // 2, name), (1, n // 2, name)]))
    if shm:
        if watch:
            memwatch.unwatch("block")
        del watched
        shm.close()
        shm.unlink()
    print(f"{seconds:.6f} {n}")


if __name__ == "__main__":
    main()
