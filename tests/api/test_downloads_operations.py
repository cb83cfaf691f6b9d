"""Exports and bulk operations over the API."""

from __future__ import annotations

import json

from llmadmin.extensions import db
from llmadmin.models import BulkOperation, Download
from llmadmin.services import downloads as download_service
from tests.api.conftest import assert_error


def make_tasks(api, n):
    items = [{"prompt": f"p{i}", "model": "Sim"} for i in range(n)]
    return api.post("/api/v1/tasks", json={"tasks": items}).get_json()["ids"]


def test_export_from_the_task_filters_then_fetch_the_file(member_api, other_api, sim_model):
    ids = make_tasks(member_api, 3)
    make_tasks(other_api, 2)
    response = member_api.post(
        "/api/v1/downloads", json={"format": "csv", "filters": {"search": "p"}}
    )
    assert response.status_code == 202, response.get_json()
    download = response.get_json()
    assert download["status"] == "PENDING" and download["file_url"] is None
    row = db.session.get(Download, download["id"])
    selection = json.loads(row.selection)
    assert selection["search"] == "p" and selection["list"] == "task"
    assert_error(member_api.get(f"/api/v1/downloads/{download['id']}/file"), 409)
    download_service.run_export(download["id"])
    done = member_api.get(f"/api/v1/downloads/{download['id']}").get_json()
    assert done["status"] == "SUCCESS" and done["row_count"] == 3  # the member's own only
    file = member_api.get(done["file_url"])
    assert file.status_code == 200
    text = file.get_data(as_text=True)
    assert all(f'\n"{i}",' in text for i in ids)
    assert_error(other_api.get(f"/api/v1/downloads/{download['id']}"), 404)


def test_export_of_ticked_ids_and_bad_input(member_api, sim_model):
    ids = make_tasks(member_api, 2)
    response = member_api.post("/api/v1/downloads", json={"format": "xlsx", "ids": ids[:1]})
    assert response.status_code == 202
    assert json.loads(db.session.get(Download, response.get_json()["id"]).selection)["ids"] == [
        ids[0]
    ]
    assert_error(member_api.post("/api/v1/downloads", json={"format": "pdf"}), 422, field="format")
    assert_error(
        member_api.post("/api/v1/downloads", json={"format": "csv", "filters": {"x": 1}}),
        422,
        field="filters.x",
    )
    assert_error(member_api.post("/api/v1/downloads", json={"format": "csv", "ids": []}), 422)


def test_bulk_operation_with_counts(member_api, other_api, sim_model):
    member_api.post("/api/v1/downloads", json={"format": "csv"})
    operation = db.session.query(BulkOperation).one()
    body = member_api.get(f"/api/v1/bulk-operations/{operation.id}").get_json()
    assert body["action"] == "export_csv" and body["status"] == "PENDING"
    assert {"matched", "processed", "changed", "skipped"} <= set(body)
    assert_error(other_api.get(f"/api/v1/bulk-operations/{operation.id}"), 404)
