"""Experiments: create / get / get-by-name / search / rename / delete / restore / tags."""

import time

import mlflow
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from conftest import unique


def test_default_experiment_exists(client):
    exp = client.get_experiment("0")
    assert exp.experiment_id == "0"
    assert exp.name == "Default"
    assert exp.lifecycle_stage == "active"


def test_create_and_get(client):
    name = unique("exp")
    exp_id = client.create_experiment(name, tags={"team": "a", "k2": "v2"})
    assert isinstance(exp_id, str) and exp_id.isdigit()

    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.artifact_location == f"mlflow-artifacts:/{exp_id}"
    assert exp.tags == {"team": "a", "k2": "v2"}
    assert exp.creation_time and exp.creation_time > 1_600_000_000_000
    assert exp.last_update_time and exp.last_update_time >= exp.creation_time

    by_name = client.get_experiment_by_name(name)
    assert by_name is not None
    assert by_name.experiment_id == exp_id
    assert by_name.tags == {"team": "a", "k2": "v2"}


def test_ids_are_distinct_decimal_strings(client):
    ids = [client.create_experiment(unique("ids")) for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(i.isdigit() for i in ids)


def test_get_by_name_missing_is_none(client):
    assert client.get_experiment_by_name(unique("missing")) is None
    assert mlflow.get_experiment_by_name(unique("missing")) is None


def test_get_missing_id_is_resource_does_not_exist(client):
    with pytest.raises(MlflowException) as ei:
        client.get_experiment("987654321")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_duplicate_name_is_resource_already_exists(client):
    name = unique("dup")
    client.create_experiment(name)
    with pytest.raises(MlflowException) as ei:
        client.create_experiment(name)
    assert ei.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_fluent_set_experiment_creates_then_reuses(client):
    name = unique("fluent")
    exp = mlflow.set_experiment(name)
    assert exp.name == name
    again = mlflow.set_experiment(name)
    assert again.experiment_id == exp.experiment_id
    assert mlflow.get_experiment(exp.experiment_id).name == name


def test_search_like_order_and_paging(client):
    pfx = unique("pfx")
    names = [f"{pfx}-{i}" for i in range(5)]
    ids = {n: client.create_experiment(n, tags={"i": str(i), "parity": "even" if i % 2 == 0 else "odd"})
           for i, n in enumerate(names)}
    client.create_experiment(unique("other"))  # must not match

    found = client.search_experiments(filter_string=f"name LIKE '{pfx}-%'", order_by=["name ASC"])
    assert [e.name for e in found] == names
    assert [e.experiment_id for e in found] == [ids[n] for n in names]

    found = client.search_experiments(filter_string=f"name LIKE '{pfx}-%'", order_by=["name DESC"])
    assert [e.name for e in found] == list(reversed(names))

    # tags filter, combined with AND
    found = client.search_experiments(
        filter_string=f"name LIKE '{pfx}-%' AND tags.parity = 'even'", order_by=["name ASC"]
    )
    assert [e.name for e in found] == [names[0], names[2], names[4]]
    found = client.search_experiments(filter_string=f"name LIKE '{pfx}-%' AND tags.i = '3'")
    assert [e.name for e in found] == [names[3]]

    # paging: 2 + 2 + 1, the last page has no token
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_experiments(
            filter_string=f"name LIKE '{pfx}-%'", order_by=["name ASC"], max_results=2, page_token=token
        )
        pages += 1
        assert len(page) <= 2
        seen.extend(e.name for e in page)
        token = page.token
        if not token:
            break
        assert pages < 10
    assert seen == names
    assert pages == 3

    # the fluent API returns a plain list
    fl = mlflow.search_experiments(filter_string=f"name LIKE '{pfx}-%'", order_by=["name ASC"])
    assert [e.name for e in fl] == names


def test_search_no_match_is_empty(client):
    found = client.search_experiments(filter_string=f"name = '{unique('nomatch')}'")
    assert list(found) == []
    assert not found.token


def test_rename(client):
    old = unique("old")
    new = unique("new")
    exp_id = client.create_experiment(old)
    client.rename_experiment(exp_id, new)
    assert client.get_experiment(exp_id).name == new
    assert client.get_experiment_by_name(old) is None
    assert client.get_experiment_by_name(new).experiment_id == exp_id


def test_delete_restore_and_view_types(client):
    pfx = unique("del")
    keep_id = client.create_experiment(f"{pfx}-keep")
    gone_id = client.create_experiment(f"{pfx}-gone")

    client.delete_experiment(gone_id)
    gone = client.get_experiment(gone_id)  # soft delete: still readable
    assert gone.lifecycle_stage == "deleted"
    by_name = client.get_experiment_by_name(f"{pfx}-gone")
    assert by_name is not None and by_name.lifecycle_stage == "deleted"

    flt = f"name LIKE '{pfx}-%'"
    active = client.search_experiments(filter_string=flt)
    assert {e.experiment_id for e in active} == {keep_id}
    deleted = client.search_experiments(filter_string=flt, view_type=ViewType.DELETED_ONLY)
    assert {e.experiment_id for e in deleted} == {gone_id}
    everything = client.search_experiments(filter_string=flt, view_type=ViewType.ALL)
    assert {e.experiment_id for e in everything} == {keep_id, gone_id}

    # a deleted experiment cannot take new runs
    with pytest.raises(MlflowException) as ei:
        client.create_run(gone_id)
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"

    client.restore_experiment(gone_id)
    assert client.get_experiment(gone_id).lifecycle_stage == "active"
    active = client.search_experiments(filter_string=flt)
    assert {e.experiment_id for e in active} == {keep_id, gone_id}
    assert list(client.search_experiments(filter_string=flt, view_type=ViewType.DELETED_ONLY)) == []


def test_delete_missing_experiment(client):
    with pytest.raises(MlflowException) as ei:
        client.delete_experiment("987654321")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_experiment_tags(client, experiment):
    exp_id, _ = experiment
    client.set_experiment_tag(exp_id, "color", "red")
    mlflow.set_experiment_tag("shape", "round")  # fluent: active experiment
    assert client.get_experiment(exp_id).tags == {"color": "red", "shape": "round"}

    client.set_experiment_tag(exp_id, "color", "blue")  # overwrite
    assert client.get_experiment(exp_id).tags["color"] == "blue"

    client.delete_experiment_tag(exp_id, "color")
    assert client.get_experiment(exp_id).tags == {"shape": "round"}


def test_search_default_order_and_numeric_ids(client):
    pfx = unique("ord")
    ids = []
    for i in range(3):
        ids.append(client.create_experiment(f"{pfx}-{i}"))
        time.sleep(0.02)  # distinct creation_time
    # default order: creation_time DESC (then experiment_id ASC)
    found = client.search_experiments(filter_string=f"name LIKE '{pfx}-%'")
    assert [e.experiment_id for e in found] == list(reversed(ids))
    found = client.search_experiments(filter_string=f"name LIKE '{pfx}-%'", order_by=["creation_time ASC"])
    assert [e.experiment_id for e in found] == ids

    # experiment ids order as numbers, not strings ("10" after "9"); includes Default ("0")
    everything = client.search_experiments(view_type=ViewType.ALL, order_by=["experiment_id DESC"])
    got = [int(e.experiment_id) for e in everything]
    assert got == sorted(got, reverse=True)
    assert got[-1] == 0
    everything = client.search_experiments(view_type=ViewType.ALL, order_by=["experiment_id ASC"])
    got = [int(e.experiment_id) for e in everything]
    assert got == sorted(got)


def test_invalid_experiment_filter(client):
    for flt in ("name ~~ 'x'", "bogus.key = 'x'", "name = unquoted"):
        with pytest.raises(MlflowException) as ei:
            client.search_experiments(filter_string=flt)
        assert ei.value.error_code == "INVALID_PARAMETER_VALUE", flt
