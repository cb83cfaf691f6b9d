"""Small things a QA trial found: the favicon, the RQ dashboard's Jobs tab, quotes inside
quotes in notices, the batch upload form's column names in the reader's language."""

from __future__ import annotations

import html

from llmadmin.extensions import db
from llmadmin.labels import inner_quotes
from llmadmin.models import Download


def test_every_page_finds_its_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO header: one image follows
    assert "max-age" in response.headers["Cache-Control"]


def test_the_rq_dashboards_jobs_tab_opens_our_queue(app, admin_client):
    response = admin_client.get("/admin/rq/0/view/jobs")
    assert response.status_code == 302
    queue = app.config["LLM_QUEUE"]
    assert response.headers["Location"].endswith(f"/admin/rq/0/view/jobs/{queue}/queued/8/asc/1")
    assert admin_client.get(response.headers["Location"]).status_code == 200


def test_the_rq_dashboard_redirect_still_needs_an_admin(member_client):
    assert member_client.get("/admin/rq/0/view/jobs").status_code == 403


def test_a_name_with_quotes_is_not_quoted_in_the_same_marks():
    assert inner_quotes("Tasks export — search “refund”") == "Tasks export — search ‘refund’"
    assert inner_quotes('Batch "Q3 survey" results') == "Batch ‘Q3 survey’ results"
    assert inner_quotes("plain") == "plain" and inner_quotes(None) == ""


def test_the_ready_notice_does_not_nest_the_same_quotes(admin_client, admin_user):
    done = Download(
        name='Tasks export — search “say "hi"”',
        file_name="tasks.csv",
        file_format="csv",
        status="SUCCESS",
        creator_id=admin_user.id,
    )
    db.session.add(done)
    db.session.commit()
    (notice,) = admin_client.get("/downloads/notices.json").get_json()["notices"]
    text = html.unescape(notice["html"])
    assert "Your download “Tasks export — search ‘say ‘hi’’” is ready" in text
    assert text.count("“") == 1 and text.count("”") == 1 and '"' not in text.split("<a")[0]


def upload_help(client) -> str:
    page = client.get("/admin/batch/new/").get_data(as_text=True)
    start = page.index('type="file"')
    return html.unescape(page[start : page.index("</small>", start)])


def test_the_upload_form_names_the_columns_in_the_readers_language(admin_client, admin_user):
    english = upload_help(admin_client)
    assert "Prompt, " in english and "System prompt" in english and "Custom ID" in english
    admin_user.locale = "zh_Hans_CN"
    db.session.commit()
    chinese = upload_help(admin_client)
    assert "提示词 (prompt)" in chinese and "系统提示词 (system_prompt)" in chinese
    assert "提示词和模型为必填" in chinese
    assert "optionally" not in chinese
