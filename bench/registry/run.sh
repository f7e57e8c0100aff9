#!/usr/bin/env bash
# Model-registry benchmark: MLflow 3.17.2 vs twinloop, same workloads, same run.
#   bench/registry/run.sh [--quick] [--only twinloop|mlflow|both] [--json FILE] [--markdown FILE] ...
# See bench/common/run-bench.sh for the environment it reads.
exec "$(dirname "${BASH_SOURCE[0]}")/../common/run-bench.sh" registry "$@"
