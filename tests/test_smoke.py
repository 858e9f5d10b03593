def test_healthz(testapp):
    r = testapp.get("/healthz")
    assert r.json["checks"]["database"] == {"status": "ok"}


def test_plugins_admin(testapp, make_user, auth_headers):
    admin = make_user("admin")
    r = testapp.get("/api/v1/plugins", headers=auth_headers(admin))
    assert r.json["results"][0]["name"] == "core"
    student = make_user("student")
    r = testapp.get("/api/v1/plugins", headers=auth_headers(student), status=403)
    assert r.json["error"]["code"] == "PERMISSION_DENIED"
