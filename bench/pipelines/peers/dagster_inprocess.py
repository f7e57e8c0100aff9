"""Dagster: the 5-step chain or the 20-wide fan-out as a job of @op functions ordered by Nothing
dependencies, run with execute_in_process (the in-process executor, an ephemeral instance).

usage: dagster_inprocess.py chain5|fanout20; prints the seconds spent inside execute_in_process."""

import sys
import time

from dagster import In, Nothing, job, op


@op
def source():
    pass


@op(ins={"after": In(Nothing)})
def noop():
    pass


@job
def chain5():
    previous = source.alias("s1")()
    for i in range(2, 6):
        previous = noop.alias(f"s{i}")(after=previous)


@job
def fanout20():
    first = source()
    branches = [noop.alias(f"b{i}")(after=first) for i in range(20)]
    noop.alias("join")(after=branches)


def main():
    shape = sys.argv[1]
    job_def = {"chain5": chain5, "fanout20": fanout20}[shape]
    start = time.perf_counter()
    result = job_def.execute_in_process()
    elapsed = time.perf_counter() - start
    if not result.success:
        sys.exit("dagster run failed")
    print(f"inner_s={elapsed:.6f}")


if __name__ == "__main__":
    main()
