"""Accounts and clients per actor, for authorisation tests.

Fixtures (registered with ``learnsail.testing``):

- ``users``: a student, another student, a teacher, another teacher and an
  admin, committed (``users.student`` or ``users["student"]``).
- ``actor_headers``: ``{"anonymous": {}, "student": {"Authorization": ...}, ...}``.
- ``clients``: an :class:`ActorClient` per actor, a WebTest client that
  sends the actor's token (``clients["teacher"].post_json(url, body)``).

The plain functions :func:`create_actors`, :func:`bearer` and
:func:`headers_by_actor` build the same things for an app a test builds
itself (e.g. with a test-only plugin).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import pytest

__all__ = ["ACTORS", "ROLE_OF", "Actors", "ActorClient", "create_actors", "bearer", "headers_by_actor",
           "users", "actor_headers", "clients"]

#: every actor an authorisation matrix speaks of, and the role of each account
ACTORS = ("anonymous", "student", "other_student", "teacher", "other_teacher", "admin")
ROLE_OF = {"student": "student", "other_student": "student", "teacher": "teacher",
           "other_teacher": "teacher", "admin": "admin"}


class Actors(dict):
    """The accounts by actor name; also readable as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def create_actors(make: Callable[[str], Any]) -> Actors:
    """One account per actor but anonymous: ``make(role)`` creates and
    returns a user with that primary role."""
    return Actors({actor: make(role) for actor, role in ROLE_OF.items()})


def bearer(settings: Mapping[str, Any], user: Any, role: str | None = None) -> dict[str, str]:
    """An ``Authorization`` header with an access token for ``user`` acting
    as ``role`` (default: their primary role)."""
    from learnsail.identity import tokens

    token = tokens.issue(settings, user.id, "access", int(settings["learnsail.jwt_access_ttl"]),
                         role=role or user.role.name)
    return {"Authorization": f"Bearer {token}"}


def headers_by_actor(settings: Mapping[str, Any], users: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``{actor: headers}`` for ``users``, plus ``"anonymous": {}``."""
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    out.update({actor: bearer(settings, user) for actor, user in users.items()})
    return out


class ActorClient:
    """A WebTest client acting as one actor: every request carries its
    headers (none for anonymous).  ``user`` is the account (None for
    anonymous)."""

    def __init__(self, testapp: Any, name: str, user: Any, headers: Mapping[str, str]) -> None:
        self.testapp = testapp
        self.name = name
        self.user = user
        self.headers = dict(headers)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs["headers"] = {**self.headers, **(kwargs.get("headers") or {})}
        return getattr(self.testapp, method)(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._call("get", url, **kwargs)

    def post_json(self, url: str, params: Any = None, **kwargs: Any) -> Any:
        return self._call("post_json", url, params=params, **kwargs)

    def put_json(self, url: str, params: Any = None, **kwargs: Any) -> Any:
        return self._call("put_json", url, params=params, **kwargs)

    def patch_json(self, url: str, params: Any = None, **kwargs: Any) -> Any:
        return self._call("patch_json", url, params=params, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self._call("delete", url, **kwargs)

    def delete_json(self, url: str, params: Any = None, **kwargs: Any) -> Any:
        return self._call("delete_json", url, params=params, **kwargs)

    def __repr__(self) -> str:
        return f"<ActorClient {self.name}>"


@pytest.fixture
def users(make_user: Callable[..., Any]) -> Actors:
    """Two students, two teachers and an admin, committed."""
    return create_actors(make_user)


@pytest.fixture
def actor_headers(app: Any, users: Actors) -> dict[str, dict[str, str]]:
    """``{actor: headers}`` for every actor of :data:`ACTORS`."""
    return headers_by_actor(app.registry.settings, users)


@pytest.fixture
def clients(testapp: Any, users: Actors, actor_headers: dict[str, dict[str, str]]) -> Iterator[dict[str, ActorClient]]:
    """``{actor: ActorClient}`` for every actor of :data:`ACTORS`."""
    yield {name: ActorClient(testapp, name, users.get(name), headers) for name, headers in actor_headers.items()}
