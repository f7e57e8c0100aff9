import argparse, json, os

import mlflow
import numpy as np
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--features", required=True)
args = parser.parse_args()
features = args.features.split(",")
path = os.environ["TWINLOOP_INPUT_TRAIN"]
train = pd.read_parquet(path)
X, y = train[features].to_numpy(np.float32), train["is_fraud"].to_numpy()
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
p = model.predict_proba(X)[:, 1]
metrics = {"accuracy": float(accuracy_score(y, p >= 0.5)), "roc_auc": float(roc_auc_score(y, p))}
onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, len(features)]))],
              options={id(model): {"zipmap": False}}, target_opset=15)
entry = onx.metadata_props.add()
entry.key, entry.value = "twinloop.features", json.dumps(features)
with open(os.environ["TWINLOOP_OUTPUT_MODEL"], "wb") as f:
    f.write(onx.SerializeToString())
with mlflow.start_run():
    mlflow.log_params({"trainer": "sklearn.LogisticRegression", "features": args.features})
    mlflow.log_input(mlflow.data.from_pandas(train, source=path, name="training_set"), context="training")
with open(os.environ["TWINLOOP_MESSAGES"], "a") as f:
    f.write(json.dumps({"output": "metrics", "value": metrics}) + "\n")
print(f"trained on {len(train)} rows: {metrics}")
