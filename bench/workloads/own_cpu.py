"""Runs a workload script (argv[2:]) as __main__, checks once more, then writes the CPU
seconds this process used (all its threads: the script's and memwatch's sender) to
argv[1]. For bench/side_cpu.sh, which takes the writer's share from the whole run's."""
import resource
import runpy
import sys

out = sys.argv[1]
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
import memwatch  # noqa: E402  (the workload imported it already)

memwatch.check()
usage = resource.getrusage(resource.RUSAGE_SELF)
with open(out, "w") as f:
    f.write(f"{usage.ru_utime + usage.ru_stime}\n")
