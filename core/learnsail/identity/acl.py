"""Owner rules for plugins, written once.

"The author may edit their note; a teacher may edit anyone's" is a rule
every plugin has.  Express it in one of two ways:

1. **A context with an ACL**, checked by the security policy before the
   view runs.  ``model_resource`` builds a Cornice/Pyramid ``factory``
   that loads the row named in the URL (404 if absent) and grants its
   owner the listed permissions::

       from learnsail.identity.acl import model_resource

       NoteResource = model_resource(Note, owner_attr="user_id",
                                     permissions=("notes:note:edit",))
       note = Service(name="notes.note", path="/api/v1/notes/{id}", factory=NoteResource)

       @note.put(permission="notes:note:edit", schema=...)
       def edit(request):
           row = request.context.instance   # already loaded
           ...

   The owner passes through the ACL; anyone else passes only if their
   active role holds ``notes:note:edit`` (plugin defaults, admin grants,
   inheritance; admin always).  Subclass :class:`Resource` for contexts
   whose owner is found some other way.

2. **A check inside the view**, when ownership is known only after
   loading: :func:`require_owner_or_permission` or :func:`load_owned`.

How the policy reads an ACL: with the principals ``system.Everyone``,
``system.Authenticated``, ``user:<id>`` and ``role:<active role>``, and it
consults the ACL *first*.  An ``Allow`` entry that matches lets the caller
in, a ``Deny`` entry that matches keeps them out (even an admin), and when
no entry matches the caller's role decides.
"""

from __future__ import annotations

from typing import Any, Iterable

from pyramid.authorization import Allow, Authenticated, Deny

from learnsail.errors import AuthFailed, NotFound, PermissionDenied, ValidationFailed

__all__ = [
    "Allow", "Deny", "Authenticated", "user_principal", "role_principal", "owner_acl", "authenticated_acl",
    "Resource", "AuthenticatedResource", "model_resource", "is_owner", "require_owner_or_permission",
    "load_owned",
]


def user_principal(user_id: int) -> str:
    """The principal the policy gives the account ``user_id``."""
    return f"user:{user_id}"


def role_principal(role_name: str) -> str:
    """The principal the policy gives a caller whose active identity is ``role_name``."""
    return f"role:{role_name}"


def owner_acl(owner_id: int | None, permissions: Iterable[str]) -> list[tuple[str, str, str]]:
    """ACL entries granting ``permissions`` to the account ``owner_id``
    (none when the thing has no owner)."""
    if owner_id is None:
        return []
    return [(Allow, user_principal(owner_id), permission) for permission in permissions]


def authenticated_acl(permissions: Iterable[str]) -> list[tuple[str, str, str]]:
    """ACL entries granting ``permissions`` to every signed-in caller,
    whatever identity (role) they are using."""
    return [(Allow, Authenticated, permission) for permission in permissions]


class Resource:
    """A Pyramid context for something an account owns.

    Set ``owner_permissions`` on the subclass and ``owner_id`` on the
    instance; ``__acl__`` is what :meth:`extra_acl` returns followed by the
    owner's grants (the first matching entry decides, so a ``Deny`` in
    ``extra_acl`` wins even over the owner).  Pyramid calls
    ``Resource(request)`` when it is a route's ``factory``.
    """

    #: permissions the owner holds on this resource
    owner_permissions: tuple[str, ...] = ()

    def __init__(self, request: Any = None, owner_id: int | None = None) -> None:
        self.request = request
        self.owner_id = owner_id

    def extra_acl(self) -> list[tuple[str, str, str]]:
        """Further ACL entries (override): a course's co-teachers, or a
        ``Deny`` that locks an archived item for everyone."""
        return []

    @property
    def __acl__(self) -> list[tuple[str, str, str]]:
        return list(self.extra_acl()) + owner_acl(self.owner_id, self.owner_permissions)


class AuthenticatedResource(Resource):
    """A context where every signed-in caller holds ``permissions`` (set
    on the subclass), whatever their identity: e.g. reading one's own
    account, which a custom role without that grant must still reach."""

    permissions: tuple[str, ...] = ()

    def extra_acl(self) -> list[tuple[str, str, str]]:
        return authenticated_acl(self.permissions)


def _path_id(request: Any, name: str) -> int:
    raw = (request.matchdict or {}).get(name)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed({name: ["Not a valid integer."]}) from None


def model_resource(model: type, *, owner_attr: str = "owner_id", permissions: Iterable[str] = (),
                   id_param: str = "id") -> type[Resource]:
    """A route ``factory`` loading the ``model`` row whose primary key is
    the path parameter ``id_param``, as ``request.context.instance``.

    A non-integer id answers 400 naming the parameter and a missing row
    404, before any permission check.  The row's ``owner_attr`` is its
    owner, who holds ``permissions`` on it.
    """
    granted = tuple(permissions)

    class ModelResource(Resource):
        owner_permissions = granted

        def __init__(self, request: Any) -> None:
            ident = _path_id(request, id_param)
            instance = request.db.get(model, ident)
            if instance is None:
                raise NotFound(f"No {model.__name__.lower()} with id {ident}.")
            super().__init__(request, getattr(instance, owner_attr))
            self.instance = instance

    ModelResource.__name__ = ModelResource.__qualname__ = f"{model.__name__}Resource"
    return ModelResource


class _RoleOnly:
    """A context without an ACL: the permission check asks the role only."""


def is_owner(request: Any, owner_id: int | None) -> bool:
    """Is the caller the account ``owner_id``?"""
    user = request.identity
    return user is not None and owner_id is not None and user.id == owner_id


def require_owner_or_permission(request: Any, owner_id: int | None, permission: str, *,
                                conceal: bool = False) -> None:
    """Let the owner through, and anyone whose active role holds
    ``permission``; refuse everyone else.

    An anonymous caller gets :class:`AuthFailed` (401).  Others get
    :class:`PermissionDenied` (403), or :class:`NotFound` (404) with
    ``conceal=True`` for private things whose existence must not leak.
    """
    if request.identity is None:
        raise AuthFailed()
    if is_owner(request, owner_id) or request.has_permission(permission, _RoleOnly()):
        return
    if conceal:
        raise NotFound()
    raise PermissionDenied()


def load_owned(request: Any, model: type, ident: Any, *, permission: str, owner_attr: str = "owner_id",
               conceal: bool = False) -> Any:
    """The ``model`` row ``ident`` if the caller owns it or their role
    holds ``permission``: :class:`NotFound` when there is no such row,
    otherwise as :func:`require_owner_or_permission`."""
    instance = request.db.get(model, ident)
    if instance is None:
        raise NotFound(f"No {model.__name__.lower()} with id {ident}.")
    require_owner_or_permission(request, getattr(instance, owner_attr), permission, conceal=conceal)
    return instance
