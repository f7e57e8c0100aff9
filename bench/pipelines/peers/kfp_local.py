"""kfp.local: the 5-step chain or the 20-wide fan-out as a pipeline of lightweight Python
components, run by the SubprocessRunner in this interpreter (use_venv=False).

usage: kfp_local.py chain5|fanout20 WORKDIR; prints the seconds spent inside the pipeline call."""

import sys
import time

from kfp import dsl, local


# kfp is already installed in this interpreter; the default would `pip install kfp` before every
# task, which reaches for the network.
@dsl.component(install_kfp_package=False)
def noop():
    pass


@dsl.pipeline
def chain5():
    task = noop()
    for _ in range(4):
        task = noop().after(task)


@dsl.pipeline
def fanout20():
    source = noop()
    branches = [noop().after(source) for _ in range(20)]
    noop().after(*branches)


def main():
    shape, workdir = sys.argv[1], sys.argv[2]
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=workdir)
    pipeline = {"chain5": chain5, "fanout20": fanout20}[shape]
    start = time.perf_counter()
    pipeline()
    print(f"inner_s={time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
