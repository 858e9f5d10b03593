"""Third-party sign-in against a WeChat/QQ-compatible provider on loopback."""

from __future__ import annotations

import urllib.parse

import pytest
import sqlalchemy as sa

from learnsail.identity.models import LoginEvent, OAuthAccount, User
from tests.support.oauth_provider import FakeProvider


@pytest.fixture(scope="module")
def provider():
    fake = FakeProvider()
    yield fake
    fake.stop()


@pytest.fixture
def configured(app, provider, monkeypatch):
    for platform in ("wechat", "qq"):
        prefix = f"learnsail.oauth.{platform}."
        monkeypatch.setitem(app.registry.settings, prefix + "app_id", provider.app_id)
        monkeypatch.setitem(app.registry.settings, prefix + "app_secret", provider.secret)
        monkeypatch.setitem(app.registry.settings, prefix + "authorize_url", f"{provider.url}/authorize")
        monkeypatch.setitem(app.registry.settings, prefix + "api_base", provider.url)
    return provider


def start(testapp, platform):
    r = testapp.get(f"/api/v1/users/oauth/{platform}/authorize", status=302)
    assert r.headers["Location"].startswith("http://127.0.0.1:")
    assert "learnsail_oauth_state" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    return r.headers["Location"]


def finish(testapp, redirect, status=200):
    parsed = urllib.parse.urlparse(redirect)
    return testapp.get(f"{parsed.path}?{parsed.query}", status=status)


@pytest.mark.parametrize("platform", ["wechat", "qq"])
def test_first_sign_in_creates_an_account_then_signs_in(testapp, configured, dbsession, platform):
    location = start(testapp, platform)
    r = finish(testapp, configured.consent(location, openid=f"{platform}-openid-1", unionid="u-1"))
    body = r.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user", "created"}
    assert body["created"] is True and body["user"]["role"] == "student"
    assert body["user"]["username"].startswith(f"{platform}_")
    assert body["user"]["avatar_url"].startswith(configured.url)
    profile = testapp.get("/api/v1/users/profile", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert profile.json["id"] == body["user"]["id"]
    again = finish(testapp, configured.consent(start(testapp, platform), openid=f"{platform}-openid-1"))
    assert again.json["created"] is False and again.json["user"]["id"] == body["user"]["id"]
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(OAuthAccount)) == 1
    events = dbsession.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == body["user"]["id"])).all()
    assert [e.method for e in events] == [platform, platform]
    # the generated account has no usable password
    user = dbsession.get(User, body["user"]["id"])
    testapp.post_json("/api/v1/users/login", {"username": user.username, "password": "!unusable"}, status=401)


def test_state_must_be_genuine_and_from_this_browser(testapp, configured):
    location = start(testapp, "wechat")
    redirect = configured.consent(location, openid="o-2")
    parsed = urllib.parse.urlparse(redirect)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    tampered = query["state"][:-2] + ("AA" if not query["state"].endswith("AA") else "BB")
    r = testapp.get(parsed.path, params={"code": query["code"], "state": tampered}, status=400)
    assert "state" in r.json["error"]["details"]
    testapp.reset()  # another browser: no state cookie
    r = testapp.get(parsed.path, params=query, status=400)
    assert "not started from this browser" in r.json["error"]["details"]["state"][0]


def test_bad_code_is_a_validation_error(testapp, configured):
    location = start(testapp, "wechat")
    redirect = configured.consent(location, openid="o-3")
    parsed = urllib.parse.urlparse(redirect)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    finish(testapp, redirect)
    fresh = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(start(testapp, "wechat")).query))
    r = testapp.get(parsed.path, params={"code": query["code"], "state": fresh["state"]},
                    status=400)  # the code was already redeemed
    assert "code" in r.json["error"]["details"]


def test_unconfigured_or_unknown_platform(testapp, app):
    r = testapp.get("/api/v1/users/oauth/wechat/authorize", status=404)
    assert "not configured" in r.json["error"]["message"]
    r = testapp.get("/api/v1/users/oauth/github/authorize", status=400)
    assert "platform" in r.json["error"]["details"]


def test_redirect_uri_allow_list(testapp, configured):
    r = testapp.get("/api/v1/users/oauth/wechat/authorize",
                    params={"redirect_uri": "https://evil.example/steal"}, status=400)
    assert "redirect_uri" in r.json["error"]["details"]


def test_provider_down_is_503(testapp, app, monkeypatch, configured):
    location = start(testapp, "wechat")
    redirect = configured.consent(location, openid="o-4")
    monkeypatch.setitem(app.registry.settings, "learnsail.oauth.wechat.api_base", "http://127.0.0.1:9")
    r = finish(testapp, redirect, status=503)
    assert r.json["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_bind_and_unbind(testapp, configured, make_user, auth_headers, dbsession):
    user = make_user()
    other = make_user()
    headers = auth_headers(user)
    location = start(testapp, "qq")
    redirect = configured.consent(location, openid="qq-bind-1")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(redirect).query))
    r = testapp.post_json("/api/v1/users/oauth/bind", {"platform": "qq", **query}, headers=headers)
    assert r.json == {"message": "Account bound successfully", "user_id": user.id, "platform": "qq"}
    # the same QQ account cannot be bound to someone else
    redirect = configured.consent(start(testapp, "qq"), openid="qq-bind-1")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(redirect).query))
    r = testapp.post_json("/api/v1/users/oauth/bind", {"platform": "qq", **query},
                          headers=auth_headers(other), status=409)
    assert r.json["error"]["code"] == "CONFLICT"
    # signing in with it now reaches the bound user
    signed = finish(testapp, configured.consent(start(testapp, "qq"), openid="qq-bind-1"))
    assert signed.json["user"]["id"] == user.id and signed.json["created"] is False
    # openid in the body must match what the code proves
    redirect = configured.consent(start(testapp, "wechat"), openid="wx-real")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(redirect).query))
    r = testapp.post_json("/api/v1/users/oauth/bind", {"platform": "wechat", "openid": "wx-claimed", **query},
                          headers=headers, status=400)
    assert "openid" in r.json["error"]["details"]
    testapp.post_json("/api/v1/users/oauth/unbind", {"platform": "qq"}, headers=auth_headers(other), status=404)
    testapp.post_json("/api/v1/users/oauth/unbind", {"platform": "qq"}, headers=headers, status=204)
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(OAuthAccount)) == 0
    testapp.post_json("/api/v1/users/oauth/bind", {"platform": "qq", **query}, status=401)


def test_only_sign_in_method_cannot_be_unbound(testapp, configured):
    body = finish(testapp, configured.consent(start(testapp, "wechat"), openid="wx-only")).json
    r = testapp.post_json("/api/v1/users/oauth/unbind", {"platform": "wechat"},
                          headers={"Authorization": f"Bearer {body['access_token']}"}, status=409)
    assert "Set a password" in r.json["error"]["message"]
