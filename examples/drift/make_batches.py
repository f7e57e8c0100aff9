"""Writes two batches of iris measurements to compare with `twinloop monitor drift`:
reference.parquet (the training data) and today.parquet (a new batch whose petals grew and sepals
narrowed, with a few sensors dropping readings). Needs scikit-learn, pandas and pyarrow.

    python examples/drift/make_batches.py --out .
"""
import argparse
import pathlib

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="directory for the two files")
args = parser.parse_args()

iris = load_iris(as_frame=True)
reference = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
reference["species"] = iris.target_names[iris.target]

rng = np.random.default_rng(42)
today = reference.sample(n=300, replace=True, random_state=1).reset_index(drop=True)
today["petal_length"] = today["petal_length"] * 1.35 + rng.normal(0, 0.2, len(today))
today["petal_width"] = today["petal_width"] + 0.6
today["sepal_width"] = today["sepal_width"] - 0.4
today.loc[rng.choice(len(today), 15, replace=False), "sepal_width"] = np.nan
# Noise at the scale of a re-measurement: sepal columns keep their distribution.
today["sepal_length"] = today["sepal_length"] + rng.normal(0, 0.05, len(today))

args.out.mkdir(parents=True, exist_ok=True)
reference.to_parquet(args.out / "reference.parquet", index=False)
today.to_parquet(args.out / "today.parquet", index=False)
print(f"wrote {args.out / 'reference.parquet'} ({len(reference)} rows) and {args.out / 'today.parquet'} ({len(today)} rows)")
