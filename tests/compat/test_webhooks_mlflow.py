"""MLflow 3's webhook API driven by the stock client: create, list, get, update, delete, test;
registry changes made through the client deliver MLflow's events with MLflow's payloads; every
delivery verifies with the recipe MLflow's documentation gives receivers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from mlflow.entities.webhook import WebhookStatus
from mlflow.exceptions import MlflowException

from conftest import unique

SECRET = "whsec-compat-secret"


def verify_webhook_signature(payload: str, signature: str, secret: str, delivery_id: str, timestamp: str) -> bool:
    """MLflow's documented receiver check (docs: "Webhooks" → "Verifying webhook signatures")."""
    if not signature or not signature.startswith("v1,"):
        return False
    signature_b64 = signature.removeprefix("v1,")
    signed_content = f"{delivery_id}.{timestamp}.{payload}"
    expected = hmac.new(secret.encode("utf-8"), signed_content.encode("utf-8"), hashlib.sha256).digest()
    return hmac.compare_digest(signature_b64, base64.b64encode(expected).decode("utf-8"))


class Receiver:
    """A webhook receiver on loopback that keeps every POST."""

    def __init__(self, status: int = 200):
        self.received: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
                with outer.lock:
                    outer.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"received")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self.lock:
            return list(self.received)

    def events(self) -> list[tuple[str, str, dict]]:
        with self.lock:
            return [
                (b["entity"], b["action"], b["data"]) for b in (json.loads(r["body"]) for r in self.received)
            ]

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def assert_signed(delivery: dict, secret: str = SECRET) -> dict:
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["x-mlflow-timestamp"]) - time.time()) < 300
    assert verify_webhook_signature(
        delivery["body"],
        headers["x-mlflow-signature"],
        secret,
        headers["x-mlflow-delivery-id"],
        headers["x-mlflow-timestamp"],
    ), delivery
    assert not verify_webhook_signature(
        delivery["body"], headers["x-mlflow-signature"], "wrong", headers["x-mlflow-delivery-id"], headers["x-mlflow-timestamp"]
    )
    return json.loads(delivery["body"])


def test_webhooks_are_created_listed_updated_and_deleted(client, server, receiver):
    name = unique("hook")
    hook = client.create_webhook(
        name=name,
        url=receiver.url,
        events=["model_version.created", "model_version_alias.created"],
        description="compat",
        secret=SECRET,
    )
    assert hook.name == name
    assert hook.url == receiver.url
    assert [str(e) for e in hook.events] == ["model_version.created", "model_version_alias.created"]
    assert hook.description == "compat"
    assert hook.status == WebhookStatus.ACTIVE
    assert hook.creation_timestamp == hook.last_updated_timestamp > 0
    assert hook.secret is None

    got = client.get_webhook(hook.webhook_id)
    assert (got.webhook_id, got.name, got.url) == (hook.webhook_id, name, receiver.url)
    listed = client.list_webhooks(max_results=1000)
    assert hook.webhook_id in [w.webhook_id for w in listed]

    # The secret never comes back, on any read.
    raw = requests.get(f"{server}/api/2.0/mlflow/webhooks/{hook.webhook_id}", timeout=10)
    assert raw.status_code == 200, raw.text
    assert SECRET not in raw.text and "secret" not in raw.json()["webhook"]
    assert raw.json()["webhook"]["events"][0] == {"entity": "MODEL_VERSION", "action": "CREATED"}
    assert raw.json()["webhook"]["status"] == "ACTIVE"
    raw = requests.get(f"{server}/api/2.0/mlflow/webhooks", timeout=10)
    assert SECRET not in raw.text

    updated = client.update_webhook(
        hook.webhook_id, name=name + "-2", status="DISABLED", events=["model_version_tag.set"]
    )
    assert updated.name == name + "-2"
    assert updated.status == WebhookStatus.DISABLED
    assert [str(e) for e in updated.events] == ["model_version_tag.set"]
    assert updated.url == receiver.url and updated.description == "compat"
    assert updated.last_updated_timestamp >= hook.last_updated_timestamp

    client.delete_webhook(hook.webhook_id)
    with pytest.raises(MlflowException) as e:
        client.get_webhook(hook.webhook_id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert hook.webhook_id not in [w.webhook_id for w in client.list_webhooks(max_results=1000)]


def test_list_pages(client, receiver):
    ids = [client.create_webhook(name=unique("page"), url=receiver.url, events=["registered_model.created"]).webhook_id for _ in range(3)]
    first = client.list_webhooks(max_results=2)
    assert len(first) == 2 and first.token
    seen = [w.webhook_id for w in first]
    token = first.token
    while token:
        page = client.list_webhooks(max_results=2, page_token=token)
        seen += [w.webhook_id for w in page]
        token = page.token
    assert set(ids) <= set(seen)
    for i in ids:
        client.delete_webhook(i)


def test_bad_requests_are_mlflow_errors(client, server, receiver):
    with pytest.raises(MlflowException) as e:
        client.create_webhook(name="-bad name-", url=receiver.url, events=["model_version.created"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    r = requests.post(
        f"{server}/api/2.0/mlflow/webhooks",
        json={"name": "x", "url": receiver.url, "events": [{"entity": "MODEL_VERSION", "action": "DELETED"}]},
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.post(f"{server}/api/2.0/mlflow/webhooks", json={"name": "x", "url": receiver.url}, timeout=10)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.create_webhook(name="ftp", url="ftp://127.0.0.1/hook", events=["model_version.created"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.update_webhook("no-such-webhook", name="x")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_test_webhook_delivers_the_signed_example(client, receiver):
    hook = client.create_webhook(
        name=unique("test"), url=receiver.url, events=["model_version.created"], secret=SECRET
    )
    result = client.test_webhook(hook.webhook_id)
    assert result.success, result
    assert result.response_status == 200
    assert result.response_body == "received"
    assert result.error_message is None
    (delivery,) = receiver.wait_for(1)
    body = assert_signed(delivery)
    assert (body["entity"], body["action"]) == ("model_version", "created")
    assert body["data"] == {
        "name": "example_model",
        "version": "1",
        "source": "models:/123",
        "run_id": "abcd1234abcd5678",
        "tags": {"example_key": "example_value"},
        "description": "An example model version",
    }
    assert "T" in body["timestamp"]

    result = client.test_webhook(hook.webhook_id, event="model_version_alias.deleted")
    assert result.success
    second = receiver.wait_for(2)[1]
    assert assert_signed(second)["data"] == {"name": "example_model", "alias": "example_alias"}
    client.delete_webhook(hook.webhook_id)


def test_a_failing_receiver_is_reported_by_test_webhook(client):
    failing = Receiver(status=404)
    try:
        hook = client.create_webhook(name=unique("fail"), url=failing.url, events=["registered_model.created"])
        result = client.test_webhook(hook.webhook_id)
        assert not result.success
        assert result.response_status == 404
        # No secret: MLflow sends the delivery unsigned.
        (delivery,) = failing.wait_for(1)
        assert "x-mlflow-signature" not in {k.lower() for k in delivery["headers"]}
        assert "x-mlflow-delivery-id" in {k.lower() for k in delivery["headers"]}
        client.delete_webhook(hook.webhook_id)
    finally:
        failing.close()


def test_registry_changes_deliver_mlflows_events(client, receiver):
    hook = client.create_webhook(
        name=unique("events"),
        url=receiver.url,
        events=[
            "registered_model.created",
            "model_version.created",
            "model_version_tag.set",
            "model_version_tag.deleted",
            "model_version_alias.created",
            "model_version_alias.deleted",
        ],
        secret=SECRET,
    )
    idle = client.create_webhook(
        name=unique("idle"), url=receiver.url, events=["model_version.created"], status="DISABLED"
    )
    model = unique("wh-model")
    client.create_registered_model(model, tags={"team": "risk"}, description="about")
    client.create_model_version(model, "s3://bucket/path/model", tags={"k": "v"}, description="first")
    client.set_model_version_tag(model, "1", "stage", "qa")
    client.delete_model_version_tag(model, "1", "stage")
    client.set_registered_model_alias(model, "champion", "1")
    client.delete_registered_model_alias(model, "champion")

    deliveries = receiver.wait_for(6)
    time.sleep(0.5)  # a disabled webhook's delivery would arrive by now
    deliveries = receiver.wait_for(6)
    for d in deliveries:
        assert_signed(d)
    got = sorted(((e, a, json.dumps(data, sort_keys=True)) for e, a, data in receiver.events()))
    expected = [
        ("registered_model", "created", {"name": model, "tags": {"team": "risk"}, "description": "about"}),
        ("model_version", "created", {"name": model, "version": "1", "source": "s3://bucket/path/model", "run_id": None, "tags": {"k": "v"}, "description": "first"}),
        ("model_version_tag", "set", {"name": model, "version": "1", "key": "stage", "value": "qa"}),
        ("model_version_tag", "deleted", {"name": model, "version": "1", "key": "stage"}),
        ("model_version_alias", "created", {"name": model, "alias": "champion", "version": "1"}),
        ("model_version_alias", "deleted", {"name": model, "alias": "champion"}),
    ]
    assert got == sorted((e, a, json.dumps(d, sort_keys=True)) for e, a, d in expected)
    client.delete_webhook(hook.webhook_id)
    client.delete_webhook(idle.webhook_id)
