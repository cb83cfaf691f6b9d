def test_login_and_pages(admin_client):
    for url in [
        "/admin/",
        "/admin/task/",
        "/admin/llmmodel/",
        "/admin/person/",
        "/admin/download/",
        "/admin/task/new/?modal=1",
        "/admin/llmmodel/new/",
        "/admin/person/new/",
        "/admin/rq/",
    ]:
        r = admin_client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.get_data(as_text=True)[:2000])
