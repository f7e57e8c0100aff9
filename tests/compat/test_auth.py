"""`twinloop server --auth` with the stock client: Basic credentials
(MLFLOW_TRACKING_USERNAME/PASSWORD), tokens (MLFLOW_TRACKING_TOKEN, which the stock basic-auth
server does not take), `mlflow.server.get_app_client("basic-auth", …)`, permissions and filtered
searches. Runs its own server (SQLite), since the session's has auth off."""

import os
import subprocess

import mlflow
import mlflow.server
import pytest
import requests
from mlflow.exceptions import MlflowException

from conftest import _free_port, _kill_group, _target, _wait_healthy, unique

pytestmark = pytest.mark.skipif(
    _target() != "twinloop", reason="tokens and the server's CLI are twinloop's"
)

ADMIN_PASSWORD = "admin-pw-1"


class AuthServer(str):
    store_uri: str


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("auth")
    port = _free_port()
    url = AuthServer(f"http://127.0.0.1:{port}")
    url.store_uri = f"sqlite:///{data}/db.sqlite"
    log_path = data / "server.log"
    env = {**os.environ, "TWINLOOP_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                os.path.abspath(os.environ["TWINLOOP_BIN"].strip()),
                "server",
                "--auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                url.store_uri,
                "--artifacts-destination",
                str(data / "artifacts"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, proc, log_path, 60, "twinloop server --auth")
        yield url
    finally:
        _kill_group(proc)


@pytest.fixture(autouse=True)
def _tracking_uri(auth_server, monkeypatch):
    """Replaces conftest's: these tests talk to their own server, with no credentials set."""
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server)
    mlflow.set_tracking_uri(auth_server)
    yield


def as_user(monkeypatch, username, password):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return mlflow.MlflowClient()


def as_token(monkeypatch, token):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return mlflow.MlflowClient()


def admin_app(auth_server, monkeypatch):
    as_user(monkeypatch, "admin", ADMIN_PASSWORD)
    return mlflow.server.get_app_client("basic-auth", tracking_uri=auth_server)


def new_user(auth_server, monkeypatch):
    name, password = unique("user"), unique("pw")
    admin_app(auth_server, monkeypatch).create_user(name, password)
    return name, password


def token_for(auth_server, user, scope):
    out = subprocess.run(
        [
            os.environ["TWINLOOP_BIN"].strip(),
            "auth",
            "--backend-store-uri",
            auth_server.store_uri,
            "token",
            "create",
            "--user",
            user,
            "--scope",
            scope,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def denied(call, status):
    with pytest.raises(MlflowException) as e:
        call()
    assert str(status) in str(e.value), str(e.value)


def test_anonymous_and_wrong_passwords_get_mlflows_401(auth_server, monkeypatch):
    r = requests.get(f"{auth_server}/api/2.0/mlflow/experiments/search", params={"max_results": 1})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
    assert r.text.startswith("You are not authenticated.")
    assert requests.get(f"{auth_server}/health").text == "OK"
    client = as_user(monkeypatch, "admin", "not-the-password")
    denied(lambda: client.search_experiments(), 401)
    assert as_user(monkeypatch, "admin", ADMIN_PASSWORD).search_experiments()


def test_app_client_creates_users_and_grants_and_the_creator_manages(auth_server, monkeypatch):
    alice, alice_pw = new_user(auth_server, monkeypatch)
    bob, bob_pw = new_user(auth_server, monkeypatch)
    app = admin_app(auth_server, monkeypatch)
    assert app.get_user(alice).username == alice
    with pytest.raises(MlflowException):
        app.create_user(alice, "again")

    exp = as_user(monkeypatch, alice, alice_pw).create_experiment(unique("exp"))
    app = admin_app(auth_server, monkeypatch)
    got = app.get_user_permission(alice, "experiment", exp)
    assert (got.permission, got.allowed) == ("MANAGE", True)
    assert app.get_user_permission(bob, "experiment", exp).permission == "READ"

    # READ (the default) reads but does not write another's experiment.
    bob_client = as_user(monkeypatch, bob, bob_pw)
    assert bob_client.get_experiment(exp).experiment_id == exp
    denied(lambda: bob_client.create_run(exp), 403)

    app = admin_app(auth_server, monkeypatch)
    app.grant_user_permission(bob, "experiment", exp, "EDIT")
    run = as_user(monkeypatch, bob, bob_pw).create_run(exp)
    as_user(monkeypatch, bob, bob_pw).log_param(run.info.run_id, "p", "1")
    # EDIT is not enough to delete.
    denied(lambda: as_user(monkeypatch, bob, bob_pw).delete_experiment(exp), 403)
    admin_app(auth_server, monkeypatch).revoke_user_permission(bob, "experiment", exp)
    denied(lambda: as_user(monkeypatch, bob, bob_pw).log_param(run.info.run_id, "q", "1"), 403)

    # Only admins make users.
    r = requests.post(
        f"{auth_server}/api/2.0/mlflow/users/create",
        json={"username": unique("x"), "password": "y"},
        auth=(bob, bob_pw),
    )
    assert (r.status_code, r.text) == (403, "Permission denied")


def test_searches_show_only_what_the_caller_may_read(auth_server, monkeypatch):
    alice, alice_pw = new_user(auth_server, monkeypatch)
    bob, bob_pw = new_user(auth_server, monkeypatch)
    alice_client = as_user(monkeypatch, alice, alice_pw)
    hidden = alice_client.create_experiment(unique("hidden"))
    shown = alice_client.create_experiment(unique("shown"))
    alice_client.create_run(hidden)
    alice_client.create_run(shown)
    model = unique("model")
    alice_client.create_registered_model(model)
    app = admin_app(auth_server, monkeypatch)
    app.grant_user_permission(bob, "experiment", hidden, "NO_PERMISSIONS")
    app.grant_user_permission(bob, "registered_model", model, "NO_PERMISSIONS")

    bob_client = as_user(monkeypatch, bob, bob_pw)
    ids = {e.experiment_id for e in bob_client.search_experiments(max_results=1000)}
    assert shown in ids and hidden not in ids
    runs = bob_client.search_runs([hidden, shown])
    assert {r.info.experiment_id for r in runs} == {shown}
    assert model not in {m.name for m in bob_client.search_registered_models(max_results=1000)}
    denied(lambda: bob_client.get_experiment(hidden), 403)
    denied(lambda: bob_client.get_registered_model(model), 403)
    alice_client = as_user(monkeypatch, alice, alice_pw)
    assert model in {m.name for m in alice_client.search_registered_models(max_results=1000)}


def test_tokens_work_as_bearer_and_as_password_within_their_scope(auth_server, monkeypatch):
    alice, alice_pw = new_user(auth_server, monkeypatch)
    exp = as_user(monkeypatch, alice, alice_pw).create_experiment(unique("exp"))
    write = token_for(auth_server, alice, "write")
    read = token_for(auth_server, alice, "read")

    run = as_token(monkeypatch, write).create_run(exp)
    as_token(monkeypatch, write).log_metric(run.info.run_id, "m", 1.0)
    as_user(monkeypatch, alice, write).log_metric(run.info.run_id, "m", 2.0)
    reader = as_token(monkeypatch, read)
    assert reader.get_run(run.info.run_id).data.metrics["m"] == 2.0
    denied(lambda: reader.log_metric(run.info.run_id, "m", 3.0), 403)
    denied(lambda: as_token(monkeypatch, "tlp_" + "x" * 43).search_experiments(), 401)
    # A token names its own user: another name with it is refused.
    denied(lambda: as_user(monkeypatch, "admin", write).search_experiments(), 401)


def test_roles_through_the_app_client_grant_deny_and_delegate(auth_server, monkeypatch):
    alice, alice_pw = new_user(auth_server, monkeypatch)
    bob, bob_pw = new_user(auth_server, monkeypatch)
    exp = as_user(monkeypatch, alice, alice_pw).create_experiment(unique("exp"))
    other = as_user(monkeypatch, alice, alice_pw).create_experiment(unique("exp"))

    app = admin_app(auth_server, monkeypatch)
    writers = app.create_role("default", unique("writers"), description="write all")
    assert (writers.workspace, writers.description, writers.permissions) == ("default", "write all", [])
    everything = app.add_role_permission(writers.id, "experiment", "*", "EDIT")
    veto = app.add_role_permission(writers.id, "experiment", other, "DENY")
    assert (everything.resource_pattern, veto.permission) == ("*", "DENY")
    assignment = app.assign_role(bob, writers.id)
    assert assignment.role_id == writers.id
    assert [r.name for r in app.list_user_roles(bob)] == [writers.name]
    assert [a.user_id for a in app.list_role_users(writers.id)] == [app.get_user(bob).id]
    assert writers.id in [r.id for r in app.list_roles("default")]
    assert {p.id for p in app.list_role_permissions(writers.id)} == {everything.id, veto.id}
    listed = requests.get(f"{auth_server}/api/2.0/mlflow/users/list", auth=("admin", ADMIN_PASSWORD))
    assert [r["name"] for u in listed.json()["users"] if u["username"] == bob for r in u["roles"]] == [
        writers.name
    ]

    # The role's EDIT on every experiment lets bob write alice's; its DENY vetoes the other
    # experiment even where the default (READ) would let him read it.
    bob_client = as_user(monkeypatch, bob, bob_pw)
    bob_client.create_run(exp)
    denied(lambda: bob_client.get_experiment(other), 403)
    app = admin_app(auth_server, monkeypatch)
    assert app.get_user_permission(bob, "experiment", other).permission == "DENY"
    app.update_role_permission(veto.id, "READ")
    assert as_user(monkeypatch, bob, bob_pw).get_experiment(other).experiment_id == other
    app = admin_app(auth_server, monkeypatch)
    app.remove_role_permission(everything.id)
    denied(lambda: as_user(monkeypatch, bob, bob_pw).create_run(exp), 403)

    # Bad input is MLflow's 400, a role the caller may not manage a 403.
    app = admin_app(auth_server, monkeypatch)
    with pytest.raises(MlflowException, match="reserved '__user_' prefix"):
        app.create_role("default", "__user_9__")
    with pytest.raises(MlflowException, match="Workspace-wide grants accept only"):
        app.add_role_permission(writers.id, "workspace", "*", "READ")
    with pytest.raises(MlflowException, match="already exists"):
        app.assign_role(bob, writers.id)
    bob_app = mlflow.server.get_app_client("basic-auth", tracking_uri=auth_server)
    as_user(monkeypatch, bob, bob_pw)
    denied(lambda: bob_app.create_role("default", unique("mine")), 403)
    # A member may read their role, not change it.
    assert bob_app.get_role(writers.id).name == writers.name
    denied(lambda: bob_app.update_role(writers.id, description="x"), 403)
    denied(lambda: bob_app.list_all_roles(), 403)

    # A workspace admin role lets its member manage roles of that workspace.
    app = admin_app(auth_server, monkeypatch)
    leads = app.create_role("default", unique("leads"))
    app.add_role_permission(leads.id, "workspace", "*", "MANAGE")
    app.assign_role(alice, leads.id)
    as_user(monkeypatch, alice, alice_pw)
    alice_app = mlflow.server.get_app_client("basic-auth", tracking_uri=auth_server)
    renamed = alice_app.update_role(writers.id, name=unique("renamed"))
    assert renamed.id == writers.id
    assert [r.id for r in alice_app.list_user_roles(bob)] == [writers.id]
    alice_app.unassign_role(bob, writers.id)
    alice_app.delete_role(writers.id)
    app = admin_app(auth_server, monkeypatch)
    assert app.list_user_roles(bob) == []
    with pytest.raises(MlflowException, match=f"Role with id={writers.id} not found"):
        app.get_role(writers.id)
