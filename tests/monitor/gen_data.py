"""Generate a reference/current pair of 50 columns with drift built into about half of them.

Modelled on the columns of the monitoring reference study: shifted normals, lognormal, t3,
exponential, integer counts, few-valued floats, 0/1 floats, 7-value integer codes (categorical
to Evidently), string categoricals with 5/20/100 Zipf categories and new categories, binary
strings, NaN columns, one column with +/-inf and no NaN.

usage: gen_data.py OUT_DIR N_REF N_CUR [SEED]   (writes reference.parquet and current.parquet)
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def make(n, rng, drift):
    d = {}
    s = 1.0 if not drift else None

    def normal(shift=0.0, scale=1.0):
        return rng.normal(shift if drift else 0.0, scale if drift else 1.0, n)

    d["num_normal_0"] = normal()
    d["num_normal_1"] = normal()
    d["num_normal_shift_s"] = normal(0.1)
    d["num_normal_shift_m"] = normal(0.25)
    d["num_normal_shift_l"] = normal(0.5)
    d["num_normal_scale_m"] = normal(0.0, 1.25)
    d["num_normal_scale_l"] = normal(0.0, 1.5)
    d["num_lognormal_0"] = rng.lognormal(0.0, 0.5, n)
    d["num_lognormal_mu_s"] = rng.lognormal(0.1 if drift else 0.0, 0.5, n)
    d["num_lognormal_mu_l"] = rng.lognormal(0.3 if drift else 0.0, 0.5, n)
    d["num_lognormal_sigma"] = rng.lognormal(0.0, 0.65 if drift else 0.5, n)
    d["num_t3"] = rng.standard_t(3, n)
    d["num_exp_scale"] = rng.exponential(1.2 if drift else 1.0, n)
    d["num_exp_0"] = rng.exponential(1.0, n)
    d["int_count_0"] = rng.poisson(20, n).astype("int64")
    d["int_count_s"] = rng.poisson(21 if drift else 20, n).astype("int64")
    d["int_count_l"] = rng.poisson(24 if drift else 20, n).astype("int64")
    d["int_nb"] = rng.negative_binomial(5, 0.3, n).astype("int64")
    p4 = [0.4, 0.3, 0.2, 0.1] if not drift else [0.35, 0.3, 0.2, 0.15]
    d["float_4val"] = rng.choice([0.5, 1.5, 2.5, 3.5], n, p=p4)
    d["float_4val_0"] = rng.choice([0.5, 1.5, 2.5, 3.5], n, p=[0.4, 0.3, 0.2, 0.1])
    d["float_3val"] = rng.choice([1.0, 2.0, 3.0], n, p=[0.5, 0.3, 0.2] if not drift else [0.3, 0.3, 0.4])
    d["float_binary"] = rng.choice([0.0, 1.0], n, p=[0.7, 0.3] if not drift else [0.6, 0.4])
    d["float_binary_0"] = rng.choice([0.0, 1.0], n, p=[0.7, 0.3])
    d["int_code_0"] = rng.integers(0, 7, n).astype("int64")
    d["int_code_1"] = rng.choice(np.arange(7), n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05] if not drift else [0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.1]).astype("int64")
    d["num_normal_2"] = normal()
    d["num_normal_3"] = normal()
    d["num_uniform"] = rng.uniform(0, 10 if not drift else 11, n)
    d["num_normal_4"] = normal()
    d["num_normal_5"] = normal(0.3)

    def cats(k, zipf=False, new=0.0, change=0.0):
        names = np.array([f"c{i:03d}" for i in range(k)])
        w = 1.0 / np.arange(1, k + 1) if zipf else np.ones(k)
        if drift and change:
            w = w * (1 + change * np.linspace(-1, 1, k))
        w = w / w.sum()
        v = rng.choice(names, n, p=w).astype(object)
        if drift and new:
            m = rng.random(n) < new
            v[m] = np.array([f"new{i}" for i in rng.integers(0, 5, m.sum())], dtype=object)
        return v

    d["cat_low_0"] = cats(5)
    d["cat_low_1"] = cats(5)
    d["cat_low_change_s"] = cats(5, change=0.3)
    d["cat_low_change_m"] = cats(5, change=0.8)
    d["cat_mid_0"] = cats(20, zipf=True)
    d["cat_mid_1"] = cats(20, zipf=True)
    d["cat_mid_change"] = cats(20, zipf=True, change=0.9)
    d["cat_mid_new_s"] = cats(20, zipf=True, new=0.01)
    d["cat_mid_new_l"] = cats(20, zipf=True, new=0.15)
    d["cat_high_0"] = cats(100, zipf=True)
    d["cat_high_1"] = cats(100, zipf=True)
    d["cat_high_new"] = cats(100, zipf=True, new=0.05)
    d["cat_high_change"] = cats(100, zipf=True, change=0.9)
    d["cat_bin_0"] = rng.choice(np.array(["no", "yes"], dtype=object), n, p=[0.8, 0.2])
    d["cat_bin_s"] = rng.choice(np.array(["no", "yes"], dtype=object), n, p=[0.8, 0.2] if not drift else [0.77, 0.23])
    d["cat_bin_l"] = rng.choice(np.array(["no", "yes"], dtype=object), n, p=[0.8, 0.2] if not drift else [0.6, 0.4])
    d["cat_low_2"] = cats(5)
    d["cat_mid_2"] = cats(20, zipf=True)
    d["cat_low_new"] = cats(5, new=0.05)
    d["cat_low_3"] = cats(5)
    df = pd.DataFrame(d)
    # Missing values: mostly 2-5 %, one column going from 2 % to 10 %.
    for col, share in [("num_normal_0", 0.02), ("num_lognormal_0", 0.03), ("num_t3", 0.05),
                       ("float_4val_0", 0.02), ("num_exp_0", 0.04), ("num_uniform", 0.02),
                       ("cat_low_0", 0.03), ("cat_mid_0", 0.02), ("cat_high_0", 0.05), ("cat_bin_0", 0.02)]:
        df.loc[rng.random(n) < share, col] = None
    df.loc[rng.random(n) < (0.10 if drift else 0.02), "num_normal_2"] = np.nan
    # +/-inf and no NaN: the column Evidently cleans inconsistently.
    k = max(1, n // 200)
    idx = rng.choice(n, k, replace=False)
    df.loc[idx[: k // 2 + 1], "num_normal_3"] = np.inf
    df.loc[idx[k // 2 + 1:], "num_normal_3"] = -np.inf
    return df


def main():
    out, n_ref, n_cur = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 20261128
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    make(n_ref, rng, False).to_parquet(out / "reference.parquet", index=False)
    make(n_cur, rng, True).to_parquet(out / "current.parquet", index=False)


if __name__ == "__main__":
    main()
