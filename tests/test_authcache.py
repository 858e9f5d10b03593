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


def test_a_caller_not_remembered_costs_one_query(testapp, app, make_user, auth_headers, db_connection, dbsession):
    """State and revocation are read together when neither is remembered
    (a caller seen less often than the cache time: a player's heartbeat)."""
    import datetime as dt

    from learnsail.identity import tokens
    from learnsail.identity.models import RevokedToken, Role, UserRole

    user = make_user("student")
    teacher_role = dbsession.scalar(sa.select(Role.id).where(Role.name == "teacher"))
    dbsession.add(UserRole(user_id=user.id, role_id=teacher_role))
    dbsession.commit()
    cache = app.registry["learnsail.auth_cache"]
    for role in ("student", "teacher"):  # the extra identity is read in the same statement
        headers = {"Authorization": "Bearer " + tokens.issue(app.registry.settings, user.id, "access", 60, role=role)}
        cache.clear()
        with count_queries(db_connection.engine) as statements:
            testapp.get("/api/v1/users/profile", headers=headers, status=200)
        # the sign-in's reads: the state (users with roles), the extra roles, the revocation
        signing_in = [s for s in statements if "revoked_tokens" in s or "user_roles" in s
                      or s.lstrip().startswith("SELECT users.is_active")]
        assert len(signing_in) == 1 and "revoked_tokens" in signing_in[0], statements
    # a revoked token is refused from that one statement too
    jti = tokens.decode(app.registry.settings, headers["Authorization"][7:], "access")["jti"]
    dbsession.add(RevokedToken(jti=jti, expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)))
    dbsession.commit()
    cache.clear()
    testapp.get("/api/v1/users/profile", headers=headers, status=401)
