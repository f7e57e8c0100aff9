"""The two benchmark models, trained on the same synthetic data and saved once per server.

Each model is saved three ways, all from the same fitted estimator:
  onnx/    an MLflow model with the onnx flavor (skl2onnx, zipmap off): what twinloop serves
  sklearn/ an MLflow model with the sklearn flavor whose pyfunc calls predict_proba: `mlflow models serve`
  mlserver/model.joblib + model-settings.json: MLServer's sklearn runtime
so every server computes the same class probabilities for the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

N_FEATURES = 20
N_CLASSES = 3
# The ONNX graph's names: skl2onnx calls the input "X"; with zipmap off a classifier has the
# outputs "label" (INT64 [N]) and "probabilities" (FP32 [N, classes]).
ONNX_INPUT = "X"
ONNX_PROBA = "probabilities"

ESTIMATORS = {
    "rf": lambda seed: RandomForestClassifier(n_estimators=100, max_depth=12, random_state=seed),
    "mlp": lambda seed: MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=200, random_state=seed),
}
DESCRIPTION = {
    "rf": "RandomForestClassifier(n_estimators=100, max_depth=12)",
    "mlp": "MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=200)",
}


@dataclass
class Trained:
    name: str
    estimator: object
    accuracy: float
    onnx_dir: Path
    sklearn_dir: Path
    mlserver_dir: Path


def make_data(rows: int, seed: int):
    """Synthetic 3-class data, float32 from the start: the ONNX model takes FP32, and trees
    split on float32 values, so every server sees exactly the same numbers."""
    X, y = make_classification(n_samples=rows, n_features=N_FEATURES, n_informative=10, n_redundant=4,
                               n_classes=N_CLASSES, random_state=seed)  # fmt: skip
    return train_test_split(X.astype(np.float32), y, test_size=0.2, random_state=seed)


def _save_onnx(est, X, path: Path):
    import mlflow.onnx
    from skl2onnx import to_onnx

    onx = to_onnx(est, X[:1], options={id(est): {"zipmap": False}})
    # Explicit requirements: otherwise MLflow infers them by loading the model in a subprocess.
    mlflow.onnx.save_model(onx, str(path), pip_requirements=[f"onnx=={version('onnx')}",
                                                             f"onnxruntime=={version('onnxruntime')}"])  # fmt: skip


def _save_sklearn(est, X, path: Path):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    import skops.io

    # A tensor signature makes the scoring server cast `{"inputs": [[...]]}` to float32, as the
    # other servers do; predict_proba so that it returns what they return. MLflow's default skops
    # format refuses to load types it does not know (tree storage, the MLP's optimizer) unless
    # they are named as trusted: we made this model, so all of its types are.
    sig = infer_signature(X[:2], est.predict_proba(X[:2]))
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(est))
    mlflow.sklearn.save_model(est, str(path), signature=sig, pyfunc_predict_fn="predict_proba",
                              skops_trusted_types=trusted,
                              pip_requirements=[f"scikit-learn=={version('scikit-learn')}"])  # fmt: skip


def _save_mlserver(est, name, path: Path):
    path.mkdir(parents=True)
    joblib.dump(est, path / "model.joblib")
    settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"}}  # fmt: skip
    (path / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def train_and_save(names, rows: int, seed: int, out: Path):
    """Fits each named model on the same split and saves it for every server; returns the test
    rows (the request payloads are drawn from them) and {name: Trained}."""
    X_train, X_test, y_train, y_test = make_data(rows, seed)
    models = {}
    for name in names:
        est = ESTIMATORS[name](seed).fit(X_train, y_train)
        m = Trained(name, est, float(est.score(X_test, y_test)), out / "onnx" / name, out / "sklearn" / name,
                    out / "mlserver" / name)  # fmt: skip
        _save_onnx(est, X_train, m.onnx_dir)
        _save_sklearn(est, X_train, m.sklearn_dir)
        _save_mlserver(est, name, m.mlserver_dir)
        models[name] = m
    return X_test, models


def onnx_runtime_proba(m: Trained, X):
    """The exported graph run in-process by ONNX Runtime: tells an export difference from a
    serving one when a server disagrees with sklearn."""
    import onnxruntime as ort

    files = sorted(m.onnx_dir.glob("*.onnx"))
    sess = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    return sess.run([ONNX_PROBA], {ONNX_INPUT: X})[0]
