import httpx


def test_console_redirects_anonymous_visitor_to_login(live_url):
    response = httpx.get(f"{live_url}/", follow_redirects=False)
    assert response.status_code == 302
    assert "/accounts/login/" in response.headers["location"]
