"""ZenML: the 5-step chain or the 20-wide fan-out as a pipeline of @step functions on the default
stack (the local orchestrator), caching off as in the other systems' runs.

usage: zenml_local.py chain5|fanout20 (run from a directory after `zenml init`, with
ZENML_CONFIG_PATH set); prints the seconds spent inside the pipeline call."""

import sys
import time

from zenml import pipeline, step


@step
def noop() -> None:
    pass


@pipeline(enable_cache=False)
def chain5():
    previous = noop(id="s1")
    for i in range(2, 6):
        previous = noop(id=f"s{i}", after=previous)


@pipeline(enable_cache=False)
def fanout20():
    source = noop(id="source")
    branches = [noop(id=f"b{i}", after=source) for i in range(20)]
    noop(id="join", after=branches)


def main():
    shape = sys.argv[1]
    run = {"chain5": chain5, "fanout20": fanout20}[shape]
    start = time.perf_counter()
    run()
    print(f"inner_s={time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
