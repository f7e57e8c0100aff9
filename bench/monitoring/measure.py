"""Run one command as a child process and print its wall time and peak RSS (ru_maxrss).

usage: measure.py LABEL -- CMD ...
"""
import os
import subprocess
import sys
import time

label = sys.argv[1]
cmd = sys.argv[sys.argv.index("--") + 1:]
t = time.perf_counter()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t
print(f"{label} wall_s={wall:.2f} cpu_s={ru.ru_utime + ru.ru_stime:.2f} peak_rss_mb={ru.ru_maxrss / 1024:.0f} exit={os.waitstatus_to_exitcode(status)}", flush=True)
