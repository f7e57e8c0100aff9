"""Fits the mean of the cleaned numbers, times --scale, and reports metrics and a row count."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--scale", type=float, required=True)
args = parser.parse_args()

with open(os.environ["TWINLOOP_INPUT_CLEAN"]) as f:
    values = [float(line) for line in f if line.strip()]

mean = sum(values) / len(values)
with open(os.environ["TWINLOOP_OUTPUT_MODEL"], "w") as f:
    json.dump({"mean": mean * args.scale}, f)

with open(os.environ["TWINLOOP_MESSAGES"], "a") as f:
    spread = max(values) - min(values)
    f.write(json.dumps({"output": "metrics", "value": {"mean": mean, "spread": spread}}) + "\n")
    f.write(json.dumps({"output": "rows", "value": len(values)}) + "\n")
