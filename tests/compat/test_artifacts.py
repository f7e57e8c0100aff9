"""Artifacts through the server's proxy (mlflow-artifacts:/...): upload, list, download, load."""

import json
import os
from pathlib import Path

import mlflow
import pytest
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
