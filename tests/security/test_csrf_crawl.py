"""Every state-changing route in the URL map refuses a request without a CSRF token."""

from tests.admin.helpers import protected_urls
from tests.conftest import login

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def test_every_state_changing_route_needs_a_csrf_token(app, client, admin_user):
    login(client, "admin@example.com", "admin-password")
    routes = [(m, u) for m, u in protected_urls(app) if m in STATE_CHANGING]
    routes.append(("POST", "/login"))
    assert len(routes) > 20  # the crawl really covers the admin, rq-dashboard and auth routes
    accepted = []
    for method, url in routes:
        response = client.open(
            url, method=method, data={"id": "1", "action": "delete", "rowid": "1"}
        )
        body = response.get_data(as_text=True)
        if response.status_code != 400 or "security token" not in body:
            accepted.append((method, url, response.status_code))
    assert accepted == []
