"""learnsail-bookmarks: the plugin's face, hook implementations only.

Registered through the entry point ``learnsail.plugins = bookmarks =
learnsail_bookmarks.plugin`` (see setup.cfg); enabled by naming it in
``learnsail.plugins`` (``LEARNSAIL_PLUGINS``) or with ``*``.
"""

from __future__ import annotations

from learnsail import hookimpl
from learnsail.plugins import PluginInfo
from learnsail.settings import Setting, as_int

from learnsail_bookmarks import __version__
from learnsail_bookmarks import models  # noqa: F401  (registers the tables on learnsail.db.Base.metadata)
from learnsail_bookmarks import services

PLUGIN = PluginInfo(
    name="bookmarks",
    version=__version__,
    core=">=0.1,<1",
    description="Every user keeps a private list of links (an example third-party plugin).",
)

LEARNERS = ["student", "teacher"]  # admins hold every permission anyway


@hookimpl
def learnsail_settings():
    def positive(value):
        number = as_int(value)
        if number < 1:
            raise ValueError("must be at least 1")
        return number

    return [Setting(services.MAX_PER_USER_SETTING, services.DEFAULT_MAX_PER_USER,
                    "Most bookmarks one user may keep; creating one more answers 409 CONFLICT.",
                    positive)]


@hookimpl
def learnsail_permissions():
    from learnsail_bookmarks.views import CREATE, DELETE, VIEW

    return {VIEW: LEARNERS, CREATE: LEARNERS, DELETE: LEARNERS}


@hookimpl
def learnsail_includeme(config):
    from learnsail_bookmarks.views import SERVICES

    for service in SERVICES:
        config.add_learnsail_service(service)


@hookimpl
def learnsail_demo_data(session, settings):
    added = services.load_demo_data(session)
    return f"{added} bookmark(s) for the administrator" if added else None


@hookimpl
def learnsail_user_erased(user_id, session):
    services.erase_user(session, user_id)


@hookimpl
def learnsail_user_export(user_id, session):
    bookmarks = services.export_user(session, user_id)
    return {"bookmarks": bookmarks} if bookmarks else None
