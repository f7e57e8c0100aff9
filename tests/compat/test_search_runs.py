"""search_runs: filter grammar, operators, ordering, paging, the DataFrame API, errors.

One experiment with six runs is built per server (module scope) and only read by the tests:

  i  run_name  start_time  status    acc   loss  `my metric`  model  alpha  parity  group
  0  sr-0      base+0      FAILED    0.1   3.0   0            lr     0      even    Alpha
  1  sr-1      base+1000   KILLED    0.5   1.0   1            rf     1      odd     Alpha
  2  sr-2      base+2000   FINISHED  0.3   NaN   2            lr     2      even    Alpha
  3  sr-3      base+3000   FINISHED  0.9   2.0   3            rf     3      odd     beta
  4  sr-4      base+4000   FINISHED  0.7   -     4            lr     4      even    beta
  5  sr-5      base+5000   FINISHED  -     -     5            -      5      -       -
"""

import math

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from conftest import unique

BASE = 1_700_000_000_000
ACC = [0.1, 0.5, 0.3, 0.9, 0.7, None]
LOSS = [3.0, 1.0, float("nan"), 2.0, None, None]
STATUS = ["FAILED", "KILLED", "FINISHED", "FINISHED", "FINISHED", "FINISHED"]


@pytest.fixture(scope="module")
def runs(server):
    client = mlflow.MlflowClient(tracking_uri=server)
    exp_id = client.create_experiment(unique("search"))
    ids = []
    for i in range(6):
        run = client.create_run(exp_id, start_time=BASE + i * 1000, run_name=f"sr-{i}")
        rid = run.info.run_id
        metrics = {"my metric": float(i)}
        if ACC[i] is not None:
            metrics["acc"] = ACC[i]
        if LOSS[i] is not None:
            metrics["loss"] = LOSS[i]
        params = {"alpha": str(i)}
        tags = {}
        if i < 5:
            params["model"] = "lr" if i % 2 == 0 else "rf"
            tags["parity"] = "even" if i % 2 == 0 else "odd"
            tags["group"] = "Alpha" if i < 3 else "beta"
        client.log_batch(
            rid,
            metrics=[Metric(k, v, BASE + i * 1000 + 1, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(rid, status=STATUS[i], end_time=BASE + i * 1000 + 500)
        ids.append(rid)
    return exp_id, ids


def _search(client, runs, flt="", order_by=None, **kw):
    exp_id, ids = runs
    res = client.search_runs([exp_id], filter_string=flt, order_by=order_by, **kw)
    return [ids.index(r.info.run_id) for r in res]


@pytest.mark.parametrize(
    "flt, expected",
    [
        # metrics, every comparator; runs without the metric never match
        ("metrics.acc = 0.5", [1]),
        ("metrics.acc != 0.5", [0, 2, 3, 4]),
        ("metrics.acc < 0.5", [0, 2]),
        ("metrics.acc <= 0.5", [0, 1, 2]),
        ("metrics.acc > 0.5", [3, 4]),
        ("metrics.acc >= 0.5", [1, 3, 4]),
        ("metrics.acc > 0.2 AND metrics.acc < 0.8", [1, 2, 4]),
        ("metrics.acc > 0.2 and metrics.`my metric` >= 2", [2, 3, 4]),
        ("metrics.`my metric` > 1", [2, 3, 4, 5]),
        ('metrics."my metric" <= 1', [0, 1]),
        ("metrics.acc >= 0", [0, 1, 2, 3, 4]),
        # params: string comparisons; != only matches runs that have the param
        ("params.model = 'lr'", [0, 2, 4]),
        ("params.model != 'lr'", [1, 3]),
        ("params.model LIKE 'l%'", [0, 2, 4]),
        ("params.model LIKE 'L%'", []),  # LIKE is case-sensitive (also on SQLite)
        ("params.model ILIKE 'L%'", [0, 2, 4]),
        ("params.`alpha` = '3'", [3]),
        ('params.model = "rf"', [1, 3]),
        # tags
        ("tags.parity = 'even'", [0, 2, 4]),
        ("tags.parity != 'even'", [1, 3]),  # sr-5 has no parity tag: not returned
        ("tags.group LIKE 'A%'", [0, 1, 2]),
        ("tags.group LIKE 'a%'", []),
        ("tags.group ILIKE 'a%'", [0, 1, 2]),
        ("tags.group ILIKE '%ET%'", [3, 4]),
        ("tags.`mlflow.runName` = 'sr-3'", [3]),
        ("tags.mlflow.runName = 'sr-4'", [4]),
        ("tags.parity = 'odd' AND params.model = 'rf' AND metrics.acc > 0.6", [3]),
        # attributes
        ("attributes.status = 'FAILED'", [0]),
        ("attributes.status != 'FINISHED'", [0, 1]),
        ("attributes.run_name = 'sr-2'", [2]),
        ("attributes.run_name LIKE 'sr-1%'", [1]),
        ("attributes.run_name ILIKE 'SR-%'", [0, 1, 2, 3, 4, 5]),
        ("attributes.run_name != 'sr-2'", [0, 1, 3, 4, 5]),
        ("attributes.start_time >= 1700000003000", [3, 4, 5]),
        ("attributes.start_time < 1700000001000", [0]),
        ("attributes.end_time > 1700000004000", [4, 5]),
        ("run_name = 'sr-1'", [1]),  # attributes. prefix is optional
        ("status = 'KILLED'", [1]),
        ("attributes.status = 'FINISHED' AND metrics.acc < 0.8", [2, 4]),
    ],
)
def test_filter(client, runs, flt, expected):
    assert sorted(_search(client, runs, flt)) == expected


def test_run_id_in_and_not_in(client, runs):
    _, ids = runs
    flt = f"attributes.run_id IN ('{ids[1]}', '{ids[4]}')"
    assert sorted(_search(client, runs, flt)) == [1, 4]
    flt = f"attributes.run_id NOT IN ('{ids[1]}', '{ids[4]}')"
    assert sorted(_search(client, runs, flt)) == [0, 2, 3, 5]
    flt = f"attributes.run_id = '{ids[2]}'"
    assert _search(client, runs, flt) == [2]
    flt = f"attributes.run_id IN ('{ids[0]}') AND metrics.acc < 1"
    assert _search(client, runs, flt) == [0]


def test_default_order_is_start_time_desc(client, runs):
    assert _search(client, runs) == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "order_by, expected",
    [
        (["metrics.acc ASC"], [0, 2, 1, 4, 3, 5]),  # runs without the metric come last ...
        (["metrics.acc DESC"], [3, 4, 1, 2, 0, 5]),  # ... in both directions
        (["metrics.acc"], [0, 2, 1, 4, 3, 5]),  # ASC is the default
        # NaN sorts after every number and before "missing"; ties: start_time DESC
        (["metrics.loss ASC"], [1, 3, 0, 2, 5, 4]),
        (["metrics.loss DESC"], [0, 3, 1, 2, 5, 4]),
        (["metrics.`my metric` DESC"], [5, 4, 3, 2, 1, 0]),
        (["params.alpha ASC"], [0, 1, 2, 3, 4, 5]),
        (["params.alpha DESC"], [5, 4, 3, 2, 1, 0]),
        (["params.model ASC"], [4, 2, 0, 3, 1, 5]),  # ties -> start_time DESC; missing last
        (["params.model DESC", "metrics.acc ASC"], [1, 3, 0, 2, 4, 5]),
        (["tags.group ASC"], [2, 1, 0, 4, 3, 5]),
        (["tags.group DESC"], [4, 3, 2, 1, 0, 5]),
        (["tags.parity DESC", "attributes.start_time ASC"], [1, 3, 0, 2, 4, 5]),
        (["attributes.run_name DESC"], [5, 4, 3, 2, 1, 0]),
        (["attributes.run_name ASC"], [0, 1, 2, 3, 4, 5]),
        (["attributes.start_time ASC"], [0, 1, 2, 3, 4, 5]),
        (["attributes.start_time DESC"], [5, 4, 3, 2, 1, 0]),
        (["start_time ASC"], [0, 1, 2, 3, 4, 5]),
        (["attributes.status ASC", "attributes.run_name DESC"], [0, 5, 4, 3, 2, 1]),
        (["tags.`mlflow.runName` DESC"], [5, 4, 3, 2, 1, 0]),
    ],
)
def test_order_by(client, runs, order_by, expected):
    assert _search(client, runs, order_by=order_by) == expected


def test_paging(client, runs):
    exp_id, ids = runs
    order = ["metrics.`my metric` ASC"]
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_runs([exp_id], order_by=order, max_results=4, page_token=token)
        pages += 1
        seen.extend(ids.index(r.info.run_id) for r in page)
        token = page.token
        if not token:
            break
        assert pages < 10
    assert seen == [0, 1, 2, 3, 4, 5]
    assert pages == 2

    pages = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string="metrics.acc >= 0", max_results=2, page_token=token)
        pages.append([ids.index(r.info.run_id) for r in page])
        token = page.token
        if not token:
            break
        assert len(pages) < 10
    assert [i for p in pages for i in p] == [4, 3, 2, 1, 0]
    assert [len(p) for p in pages[:2]] == [2, 2]
    assert sum(len(p) for p in pages) == 5


def test_search_results_carry_data(client, runs):
    exp_id, ids = runs
    (r,) = client.search_runs([exp_id], filter_string=f"attributes.run_id = '{ids[3]}'")
    assert r.info.status == "FINISHED"
    assert r.info.run_name == "sr-3"
    assert r.info.start_time == BASE + 3000
    assert r.info.end_time == BASE + 3500
    assert r.data.metrics == {"acc": 0.9, "loss": 2.0, "my metric": 3.0}
    assert r.data.params == {"alpha": "3", "model": "rf"}
    assert r.data.tags["parity"] == "odd"
    assert r.data.tags["mlflow.runName"] == "sr-3"
    (r2,) = client.search_runs([exp_id], filter_string=f"attributes.run_id = '{ids[2]}'")
    assert math.isnan(r2.data.metrics["loss"])


def test_search_multiple_experiments(client, runs):
    exp_id, ids = runs
    other = client.create_experiment(unique("search-other"))
    other_run = client.create_run(other, start_time=BASE + 10_000, run_name="other").info.run_id
    res = client.search_runs([exp_id, other], filter_string="attributes.start_time >= 1700000004000")
    assert [r.info.run_id for r in res] == [other_run, ids[5], ids[4]]


def test_fluent_search_runs_dataframe(runs):
    exp_id, ids = runs
    df = mlflow.search_runs(experiment_ids=[exp_id], order_by=["attributes.run_name ASC"])
    assert list(df["run_id"]) == ids
    for col in ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time",
                "metrics.acc", "metrics.my metric", "params.model", "params.alpha",
                "tags.parity", "tags.mlflow.runName"):
        assert col in df.columns, col
    assert list(df["status"]) == STATUS
    assert df.loc[3, "metrics.acc"] == 0.9
    assert df.loc[0, "params.model"] == "lr"
    assert list(df["tags.mlflow.runName"]) == [f"sr-{i}" for i in range(6)]
    assert (df["experiment_id"] == exp_id).all()

    df = mlflow.search_runs([exp_id], filter_string="params.model = 'rf'", order_by=["metrics.acc DESC"])
    assert list(df["run_id"]) == [ids[3], ids[1]]

    runs_list = mlflow.search_runs([exp_id], filter_string="tags.parity = 'odd'", output_format="list")
    assert {r.info.run_id for r in runs_list} == {ids[1], ids[3]}

    empty = mlflow.search_runs([exp_id], filter_string="params.model = 'nope'")
    assert len(empty) == 0


def test_empty_experiment_search(client):
    exp_id = client.create_experiment(unique("empty"))
    res = client.search_runs([exp_id])
    assert list(res) == []
    assert not res.token


@pytest.mark.parametrize(
    "flt",
    [
        "metrics.acc >>> 1",
        "bogus",
        "foo.bar = 1",
        "params.model = unquoted",
        "metrics.acc = 'text'",
        "attributes.run_id = 'a' OR attributes.run_id = 'b'",
        "attributes.nonexistent = 'x'",
        "params.model IN ('lr')",
        "attributes.status IN ('FAILED', 'KILLED')",  # IN only works on run_id
        "metrics.acc >",
    ],
)
def test_invalid_filter(client, runs, flt):
    exp_id, _ = runs
    with pytest.raises(MlflowException) as ei:
        client.search_runs([exp_id], filter_string=flt)
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("order_by", [["bogus DESC"], ["metrics.acc sideways"], ["foo.bar ASC"]])
def test_invalid_order_by(client, runs, order_by):
    exp_id, _ = runs
    with pytest.raises(MlflowException) as ei:
        client.search_runs([exp_id], order_by=order_by)
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"


def test_invalid_page_token_and_max_results(client, runs):
    exp_id, _ = runs
    with pytest.raises(MlflowException) as ei:
        client.search_runs([exp_id], page_token="garbage")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as ei:
        client.search_runs([exp_id], max_results=50001)
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"


def test_deleted_runs_view_type_in_search(client, runs):
    exp_id, _ = runs
    # the module's runs are all active
    assert _search(client, runs, run_view_type=ViewType.DELETED_ONLY) == []
    assert len(_search(client, runs, run_view_type=ViewType.ALL)) == 6
