"""Writes the small ONNX models the serving tests load, as MLflow model directories, and what
onnxruntime itself answers for a few rows of each (expected.json).

Run with scikit-learn 1.9.1, skl2onnx 1.20.0 and onnxruntime 1.32.0:
    python make_models.py
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).parent
rng = np.random.default_rng(7)
X = rng.normal(size=(300, 4)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
rows = X[:5]


def save(name, onx, feeds):
    d = HERE / name
    d.mkdir(exist_ok=True)
    (d / "model.onnx").write_bytes(onx.SerializeToString())
    (d / "MLmodel").write_text(
        "flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.20.0\n"
        "  python_function:\n    loader_module: mlflow.onnx\n"
    )
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    expected = {}
    for meta, value in zip(sess.get_outputs(), outs):
        if isinstance(value, list):  # ZipMap: a list of {class: probability}
            value = np.array([[m[k] for k in sorted(m)] for m in value], dtype=np.float32)
        expected[meta.name] = {"shape": list(value.shape), "data": value.ravel().tolist()}
    inputs = {
        k: {"shape": list(v.shape), "data": [x if not isinstance(x, bytes) else x.decode() for x in v.ravel().tolist()]}
        for k, v in feeds.items()
    }
    return {"inputs": inputs, "outputs": expected}


cases = {}
logreg = LogisticRegression(max_iter=500).fit(X, y)
cases["logreg"] = save(
    "logreg", to_onnx(logreg, X[:1], options={id(logreg): {"zipmap": False}}), {"X": rows}
)
cases["logreg_zipmap"] = save("logreg_zipmap", to_onnx(logreg, X[:1]), {"X": rows})

forest = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(X, X[:, 0] * 2)
cases["rf_reg"] = save("rf_reg", to_onnx(forest, X[:1]), {"X": rows})

colours = np.array(["red", "green", "blue"])[rng.integers(0, 3, size=300)]
frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "colour": colours})
pipe = Pipeline([
    ("prep", ColumnTransformer([
        ("num", StandardScaler(), ["a", "b"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
    ])),
    ("clf", LogisticRegression(max_iter=500)),
]).fit(frame, y)
onx = to_onnx(
    pipe,
    initial_types=[("a", FloatTensorType([None, 1])), ("b", FloatTensorType([None, 1])),
                   ("colour", StringTensorType([None, 1]))],
    options={id(pipe): {"zipmap": False}},
)
cases["pipeline"] = save("pipeline", onx, {
    "a": X[:5, :1], "b": X[:5, 1:2], "colour": np.array([["red"], ["green"], ["blue"], ["purple"], ["red"]], dtype=object),
})

# Inputs named like online features, for feature enrichment: score = conv_rate + acc_rate.
from onnx import TensorProto, helper  # noqa: E402

graph = helper.make_graph(
    [helper.make_node("Add", ["conv_rate", "acc_rate"], ["score"])],
    "feature_sum",
    [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("conv_rate", "acc_rate")],
    [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
)
feature_sum = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
cases["feature_sum"] = save("feature_sum", feature_sum, {
    "conv_rate": np.array([[0.25], [1.0]], dtype=np.float32),
    "acc_rate": np.array([[0.5], [2.0]], dtype=np.float32),
})

(HERE / "expected.json").write_text(json.dumps(cases, indent=1) + "\n")
print("wrote", ", ".join(cases))
