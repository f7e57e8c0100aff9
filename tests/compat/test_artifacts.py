"""Artifacts through the server's proxy (mlflow-artifacts:/...): upload, list, download, load."""

import json
import os
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException

BINARY = bytes(range(256)) * 800  # 200 KiB, every byte value


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "with space.txt": b"has a space in its name\n",
        "sub/b.json": b'{"b": 1}',
        "sub/deeper/c.bin": BINARY,
        "sub/deeper/empty.txt": b"",
        "unicod\u00e9-\u00fc.txt": "caf\u00e9\n".encode(),
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def _read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)).replace(os.sep, "/"): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_log_artifact_and_list(client, experiment, tmp_path):
    f = tmp_path / "hello.txt"
    f.write_text("hello, artifacts\n")
    b = tmp_path / "blob.bin"
    b.write_bytes(BINARY)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(f))
        mlflow.log_artifact(str(b), artifact_path="bin")
        mlflow.log_artifact(str(f), artifact_path="x/y")
    run_id = run.info.run_id

    root = client.list_artifacts(run_id)
    assert [(a.path, a.is_dir) for a in root] == [("bin", True), ("hello.txt", False), ("x", True)]
    sizes = {a.path: a.file_size for a in root}
    assert sizes["hello.txt"] == len("hello, artifacts\n")
    assert sizes["bin"] is None and sizes["x"] is None

    sub = client.list_artifacts(run_id, "bin")
    assert [(a.path, a.is_dir, a.file_size) for a in sub] == [("bin/blob.bin", False, len(BINARY))]
    assert [(a.path, a.is_dir) for a in client.list_artifacts(run_id, "x")] == [("x/y", True)]
    assert [a.path for a in client.list_artifacts(run_id, "x/y")] == ["x/y/hello.txt"]

    # missing directory and a file path both list as empty
    assert client.list_artifacts(run_id, "no-such-dir") == []
    assert client.list_artifacts(run_id, "hello.txt") == []


def test_log_artifacts_tree_and_download(client, experiment, tmp_path):
    src = tmp_path / "src"
    files = _make_tree(src)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="tree")
        mlflow.log_artifacts(str(src))  # also at the root
    run_id = run.info.run_id

    listing = client.list_artifacts(run_id, "tree")
    assert [(a.path, a.is_dir) for a in listing] == [
        ("tree/a.txt", False),
        ("tree/sub", True),
        ("tree/unicod\u00e9-\u00fc.txt", False),
        ("tree/with space.txt", False),
    ]
    assert {a.path: a.file_size for a in listing}["tree/with space.txt"] == len(files["with space.txt"])
    deeper = client.list_artifacts(run_id, "tree/sub/deeper")
    assert [a.path for a in deeper] == ["tree/sub/deeper/c.bin", "tree/sub/deeper/empty.txt"]
    assert deeper[0].file_size == len(BINARY)
    # the real server leaves file_size out for an empty file (proto default), so None or 0
    assert deeper[1].file_size in (None, 0)

    # whole directory
    dst = tmp_path / "dl-dir"
    dst.mkdir()
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="tree", dst_path=str(dst))
    assert Path(local) == dst / "tree"
    assert _read_tree(Path(local)) == files

    # single files, including the one with a space in its name
    dst2 = tmp_path / "dl-file"
    dst2.mkdir()
    local = client.download_artifacts(run_id, "tree/with space.txt", str(dst2))
    assert Path(local).read_bytes() == files["with space.txt"]
    local = client.download_artifacts(run_id, "tree/sub/deeper/c.bin", str(dst2))
    assert Path(local).read_bytes() == BINARY

    # the whole run root
    dst3 = tmp_path / "dl-root"
    dst3.mkdir()
    local = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(dst3))
    got = _read_tree(Path(local))
    for rel, data in files.items():
        assert got[rel] == data
        assert got[f"tree/{rel}"] == data

    # by artifact URI (mlflow-artifacts:/...) and by runs:/ URI
    dst4 = tmp_path / "dl-uri"
    dst4.mkdir()
    uri = f"{run.info.artifact_uri}/tree/a.txt"
    assert uri.startswith("mlflow-artifacts:/")
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst4))
    assert Path(local).read_bytes() == files["a.txt"]
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/tree/sub/b.json", dst_path=str(dst4))
    assert Path(local).read_bytes() == files["sub/b.json"]


def test_download_missing_artifact_fails(client, experiment, tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_text("x", "present.txt")
    with pytest.raises((MlflowException, OSError)):
        client.download_artifacts(run.info.run_id, "absent.txt", str(tmp_path))


def test_log_dict_and_text(client, experiment):
    payload = {"a": 1, "nested": {"b": [1, 2, 3]}, "s": "caf\u00e9"}
    with mlflow.start_run() as run:
        mlflow.log_dict(payload, "conf/config.json")
        mlflow.log_dict(payload, "conf/config.yaml")
        mlflow.log_text("line one\nline two\n", "notes/readme.txt")
    run_id = run.info.run_id
    art = run.info.artifact_uri

    assert mlflow.artifacts.load_dict(f"{art}/conf/config.json") == payload
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/conf/config.json") == payload
    assert "nested:" in mlflow.artifacts.load_text(f"{art}/conf/config.yaml")
    assert mlflow.artifacts.load_text(f"{art}/notes/readme.txt") == "line one\nline two\n"
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt") == "line one\nline two\n"
    assert [a.path for a in client.list_artifacts(run_id, "conf")] == ["conf/config.json", "conf/config.yaml"]

    # client-side variants
    client.log_text(run_id, "from client", "client.txt")
    client.log_dict(run_id, {"k": "v"}, "client.json")
    assert mlflow.artifacts.load_text(f"{art}/client.txt") == "from client"
    assert json.loads(mlflow.artifacts.load_text(f"{art}/client.json")) == {"k": "v"}


def test_overwrite_artifact(client, experiment):
    with mlflow.start_run() as run:
        mlflow.log_text("v1", "same.txt")
        mlflow.log_text("version two", "same.txt")
    art = run.info.artifact_uri
    assert mlflow.artifacts.load_text(f"{art}/same.txt") == "version two"
    (info,) = client.list_artifacts(run.info.run_id)
    assert info.file_size == len("version two")


def test_empty_run_lists_nothing(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    assert client.list_artifacts(run_id) == []


def test_runs_are_isolated(client, experiment):
    with mlflow.start_run() as r1:
        mlflow.log_text("one", "f.txt")
    with mlflow.start_run() as r2:
        mlflow.log_text("two", "f.txt")
    assert mlflow.artifacts.load_text(f"{r1.info.artifact_uri}/f.txt") == "one"
    assert mlflow.artifacts.load_text(f"{r2.info.artifact_uri}/f.txt") == "two"


def test_artifact_storage_layout(server, client, experiment):
    """Artifacts land where the real server puts them, so a store can move between the two:
    <destination>/<experiment_id>/<run_id>/artifacts/<path>."""
    exp_id, _ = experiment
    with mlflow.start_run() as run:
        mlflow.log_text("layout", "dir/layout file.txt")
    rel = f"{exp_id}/{run.info.run_id}/artifacts/dir/layout file.txt"
    if server.s3_bucket:
        obj = server.s3_client().get_object(Bucket=server.s3_bucket, Key=f"{server.s3_prefix}/{rel}")
        assert obj["Body"].read() == b"layout"
    else:
        assert (server.artifact_root / rel).read_bytes() == b"layout"


# --- the tracking server's own artifact routes (what MLflow's UI and REST users call) ---------

API = "/api/2.0/mlflow"


def _bad_path(response):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
    # MLflow's exact words: its own tests compare the whole message.
    assert body["message"] == "Invalid path", body


def _attachment_name(response) -> str:
    from email.message import Message

    msg = Message()
    msg["Content-Disposition"] = response.headers["Content-Disposition"]
    assert msg.get_content_disposition() == "attachment"
    return msg.get_filename()


@pytest.mark.parametrize("prefix", ["/api", "/ajax-api"])
def test_rest_list_artifacts(server, client, experiment, tmp_path, prefix):
    with mlflow.start_run() as run:
        mlflow.log_text("0", "a.txt")
        mlflow.log_text("1", "dir/b.txt")
        mlflow.log_text("", "dir/empty.txt")
    run_id = run.info.run_id
    url = f"{server}{prefix}/2.0/mlflow/artifacts/list"

    root = requests.get(url, params={"run_id": run_id}, timeout=20).json()
    assert root == {
        "root_uri": run.info.artifact_uri,
        "files": [{"path": "a.txt", "is_dir": False, "file_size": 1}, {"path": "dir", "is_dir": True}],
    }
    nested = requests.get(url, params={"run_id": run_id, "path": "dir"}, timeout=20).json()
    assert [f["path"] for f in nested["files"]] == ["dir/b.txt", "dir/empty.txt"]
    assert nested["root_uri"] == run.info.artifact_uri
    # run_uuid is the older spelling MLflow still accepts
    assert requests.get(url, params={"run_uuid": run_id}, timeout=20).json() == root
    # a missing directory lists as empty: only root_uri is left
    assert requests.get(url, params={"run_id": run_id, "path": "nope"}, timeout=20).json() == {
        "root_uri": run.info.artifact_uri
    }

    for bad in ["../", "dir/../../x", "/etc", "/", ".."]:
        _bad_path(requests.get(url, params={"run_id": run_id, "path": bad}, timeout=20))
    missing = requests.get(url, params={"run_id": "0" * 32}, timeout=20)
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_rest_list_artifacts_pages_with_a_token(server, client, experiment):
    if server.target == "mlflow":
        pytest.skip("MLflow's server ignores page_token: it never pages a run's artifacts")
    with mlflow.start_run() as run:
        mlflow.log_text("x", "only.txt")
    url = f"{server}{API}/artifacts/list"
    # a token after the last entry leaves an empty page and no further token
    after = requests.get(url, params={"run_id": run.info.run_id, "page_token": "only.txt"}, timeout=20).json()
    assert after == {"root_uri": run.info.artifact_uri}


@pytest.mark.parametrize(
    ("filename", "mime"),
    [
        ("a.txt", "text/plain"),
        ("b.pkl", "application/octet-stream"),
        ("c.png", "image/png"),
        ("d.pdf", "application/pdf"),
        ("MLmodel", "text/plain"),
        ("mlproject", "text/plain"),
        ("conda.yaml", "text/plain"),
    ],
)
def test_downloads_are_typed_attachments(server, client, experiment, tmp_path, filename, mime):
    f = tmp_path / filename
    f.write_bytes(b"content")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(f), artifact_path="dir")
    proxied = f"{server}/api/2.0/mlflow-artifacts/artifacts/{run.info.artifact_uri.split(':', 1)[1].lstrip('/')}"
    for response in [
        requests.get(f"{proxied}/dir/{filename}", timeout=20),
        requests.get(
            f"{server}/get-artifact", params={"run_id": run.info.run_id, "path": f"dir/{filename}"}, timeout=20
        ),
        # a browser asking for HTML still gets the file's own type
        requests.get(
            f"{server}/get-artifact",
            params={"run_uuid": run.info.run_id, "path": f"dir/{filename}"},
            headers={"Accept": "text/html"},
            timeout=20,
        ),
    ]:
        assert response.status_code == 200, response.text
        assert response.content == b"content"
        assert response.headers["Content-Type"] == mime
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert _attachment_name(response) == filename


def test_get_artifact_names_and_refusals(server, client, experiment):
    with mlflow.start_run() as run:
        mlflow.log_text("abcdefg", "a.txt")
        mlflow.log_text("spaced", "dir/with space.txt")
        mlflow.log_text("caf\u00e9", "dir/caf\u00e9.txt")
    run_id = run.info.run_id
    url = f"{server}/get-artifact"

    got = requests.get(url, params={"run_id": run_id, "path": "a.txt"}, timeout=20)
    assert got.text == "abcdefg"
    assert got.headers["Content-Disposition"] == "attachment; filename=a.txt"
    spaced = requests.get(url, params={"run_id": run_id, "path": "dir/with space.txt"}, timeout=20)
    assert spaced.text == "spaced"
    assert _attachment_name(spaced) == "with space.txt"
    accented = requests.get(url, params={"run_id": run_id, "path": "dir/caf\u00e9.txt"}, timeout=20)
    assert accented.content == "caf\u00e9".encode()
    assert "filename*=UTF-8''caf%C3%A9.txt" in accented.headers["Content-Disposition"]

    for bad in ["../../../etc/passwd", "/etc/passwd", "dir/../../a.txt"]:
        _bad_path(requests.get(url, params={"run_id": run_id, "path": bad}, timeout=20))
    directory = requests.get(url, params={"run_id": run_id, "path": "dir"}, timeout=20)
    assert directory.status_code == 400
    assert directory.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    absent = requests.get(url, params={"run_id": run_id, "path": "absent.txt"}, timeout=20)
    assert absent.status_code == 404
    assert absent.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_model_version_get_artifact(server, client, experiment, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "model" / "weights.bin").write_bytes(b"\x00\x01")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "model"), artifact_path="model")
    name = f"mv-artifact-{run.info.run_id[:8]}"
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    url = f"{server}/model-versions/get-artifact"

    # MLflow's server cannot read a runs:/ source (it answers 500); twinloop resolves the run
    for version in ["1", "2"] if server.target == "twinloop" else ["1"]:
        mlmodel = requests.get(url, params={"name": name, "version": version, "path": "MLmodel"}, timeout=20)
        assert mlmodel.status_code == 200, mlmodel.text
        assert mlmodel.text == "flavors: {}\n"
        assert mlmodel.headers["Content-Type"] == "text/plain"
        assert mlmodel.headers["X-Content-Type-Options"] == "nosniff"
        weights = requests.get(url, params={"name": name, "version": version, "path": "weights.bin"}, timeout=20)
        assert weights.content == b"\x00\x01"
        assert weights.headers["Content-Type"] == "application/octet-stream"
    _bad_path(requests.get(url, params={"name": name, "version": "1", "path": "../../x"}, timeout=20))
    # A repeated slash is redirected to the merged path (Werkzeug's rule, which MLflow's tests use).
    doubled = requests.get(f"{server}//model-versions/get-artifact",
                           params={"name": name, "version": "1", "path": "MLmodel"}, timeout=20)
    assert doubled.status_code == 200 and doubled.text == "flavors: {}\n", doubled.text
    missing = requests.get(url, params={"name": name, "version": "9", "path": "MLmodel"}, timeout=20)
    assert missing.status_code == 404


@pytest.mark.parametrize("prefix", ["/api", "/ajax-api"])
def test_logged_model_artifact_routes(server, client, experiment, tmp_path, prefix):
    exp_id, _ = experiment
    src = tmp_path / "m"
    (src / "sub").mkdir(parents=True)
    (src / "MLmodel").write_text("artifact_path: m\n")
    (src / "sub" / "data.bin").write_bytes(BINARY)
    model = client.create_logged_model(experiment_id=exp_id)
    client.log_model_artifacts(model.model_id, str(src))

    # the stock client lists through the proxy; the UI through the tracking route
    assert sorted(a.path for a in client.list_logged_model_artifacts(model.model_id)) == ["MLmodel", "sub"]
    base = f"{server}{prefix}/2.0/mlflow/logged-models/{model.model_id}/artifacts"
    root = requests.get(f"{base}/directories", timeout=20).json()
    assert root == {
        "root_uri": model.artifact_location,
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": len("artifact_path: m\n")},
            {"path": "sub", "is_dir": True},
        ],
    }
    sub = requests.get(f"{base}/directories", params={"artifact_directory_path": "sub"}, timeout=20).json()
    assert sub["files"] == [{"path": "sub/data.bin", "is_dir": False, "file_size": len(BINARY)}]
    _bad_path(requests.get(f"{base}/directories", params={"artifact_directory_path": "../x"}, timeout=20))

    # MLflow registers the download route under /ajax-api only (twinloop under both)
    base = f"{server}/ajax-api/2.0/mlflow/logged-models/{model.model_id}/artifacts"
    mlmodel = requests.get(f"{base}/files", params={"artifact_file_path": "MLmodel"}, timeout=20)
    assert mlmodel.status_code == 200, mlmodel.text
    assert mlmodel.text == "artifact_path: m\n"
    assert mlmodel.headers["Content-Type"] == "text/plain"
    assert mlmodel.headers["X-Content-Type-Options"] == "nosniff"
    assert _attachment_name(mlmodel) == "MLmodel"
    data = requests.get(f"{base}/files", params={"artifact_file_path": "sub/data.bin"}, timeout=20)
    assert data.content == BINARY
    _bad_path(requests.get(f"{base}/files", params={"artifact_file_path": "/etc/passwd"}, timeout=20))
    no_path = requests.get(f"{base}/files", timeout=20)
    assert no_path.status_code == 400
    assert no_path.json()["error_code"] == "BAD_REQUEST"
    unknown = requests.get(
        f"{server}{prefix}/2.0/mlflow/logged-models/m-{'0' * 32}/artifacts/directories", timeout=20
    )
    assert unknown.status_code == 404
