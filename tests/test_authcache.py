"""The security policy's cache: no database round trip for a known caller,
and revocation seen within learnsail.auth_cache_seconds."""

from __future__ import annotations

import time

import sqlalchemy as sa

from learnsail.identity.models import User
from learnsail.testing import count_queries


def test_known_caller_costs_no_query(testapp, app, make_user, auth_headers, db_connection):
    admin = make_user("admin")
    headers = auth_headers(admin)
    testapp.get("/api/v1/plugins", headers=headers)  # first request fills the cache
    with count_queries(db_connection.engine) as statements:
        testapp.get("/api/v1/plugins", headers=headers)
    assert statements == []


def test_change_by_another_process_is_seen_within_the_cache_time(testapp, app, make_user, auth_headers,
                                                                  dbsession):
    seconds = app.registry["learnsail.auth_cache"].seconds
    assert 0 < seconds <= 1
    user = make_user()
    headers = auth_headers(user)
    testapp.get("/api/v1/users/profile", headers=headers)
    # another process disables the account: this process learns it within `seconds`
    dbsession.execute(sa.update(User).where(User.id == user.id).values(is_active=False))
    dbsession.commit()
    time.sleep(seconds + 0.1)
    testapp.get("/api/v1/users/profile", headers=headers, status=401)


def test_change_in_this_process_applies_at_once(testapp, make_user, auth_headers):
    user = make_user(password="first passphrase here")
    headers = auth_headers(user)
    testapp.get("/api/v1/users/profile", headers=headers)
    testapp.post_json("/api/v1/users/password/change",
                      {"old_password": "first passphrase here", "new_password": "second passphrase here"},
                      headers=headers, status=204)
    testapp.get("/api/v1/users/profile", headers=headers, status=401)
