"""learnsail-courses: the plugin's face, hook implementations only.

Registered through the entry point ``learnsail.plugins = courses =
learnsail_courses.plugin`` (see setup.cfg); enabled by naming it in
``learnsail.plugins`` (``LEARNSAIL_PLUGINS``) or with ``*``.
"""

from __future__ import annotations

from learnsail import hookimpl
from learnsail.plugins import PluginInfo
from learnsail.settings import Setting, as_bool, as_int

from learnsail_courses import __version__
from learnsail_courses import hookspecs as HOOKSPECS  # noqa: F401  (the hooks this plugin offers)
from learnsail_courses import models  # noqa: F401  (registers the tables on learnsail.db.Base.metadata)
from learnsail_courses import settings as course_settings

PLUGIN = PluginInfo(
    name="courses",
    version=__version__,
    core=">=0.1,<1",
    description="Categories, tags, courses with chapters and lessons, review, enrolment, progress, "
                "notes, collections and comments.",
)


@hookimpl
def learnsail_settings():
    def percentage(value):
        number = as_int(value)
        if not 1 <= number <= 100:
            raise ValueError("must be between 1 and 100")
        return number

    def seconds(value):
        number = as_int(value)
        if number < 0:
            raise ValueError("must be 0 or more")
        return number

    return [
        Setting(course_settings.COMPLETION_THRESHOLD, 90,
                "Progress (percent) at which a lesson counts as completed; a course's own "
                "completion_threshold overrides it.", percentage),
        Setting(course_settings.COMMENT_APPROVAL, False,
                "When true, new comments stay hidden until a comment moderator approves them.", as_bool),
        Setting(course_settings.TRIAL_DAYS, 7,
                "Days a trial enrolment (enrollment_type=trial) lasts; 0 offers no trials.", seconds),
        Setting(course_settings.PROGRESS_BUFFER_SECONDS, 0,
                "Seconds progress heartbeats are buffered in the cache before the periodic task "
                "courses.flush_progress writes them; 0 writes every report at once.  Use a shared (Redis) "
                "cache when several processes serve the API.", seconds),
        Setting(course_settings.DETAIL_CACHE_TTL, 60,
                "Seconds the public part of a course's detail (GET /api/v1/courses/{id}) is cached; it is also "
                "dropped whenever the course changes.  0 turns the cache off.", seconds),
        Setting(course_settings.COUNT_CACHE_TTL, 60,
                "Seconds the public catalogue keeps the count of a query (its 'count' field) in the cache; "
                "publishing, unpublishing, editing or deleting a course drops every count at once.  "
                "0 counts on every request.", seconds),
        Setting(course_settings.HOT_CACHE_TTL, 300,
                "Seconds the hot-course ranking (GET /api/v1/courses/hot) is cached; 0 computes it each time.",
                seconds),
    ]


@hookimpl
def learnsail_permissions():
    from learnsail_courses.permissions import DEFAULTS

    return DEFAULTS


@hookimpl
def learnsail_includeme(config):
    from learnsail_courses import tasks  # noqa: F401  (declares the plugin's tasks)
    from learnsail_courses.views import SERVICES

    for service in SERVICES:
        config.add_learnsail_service(service)


@hookimpl
def learnsail_notification_types():
    from learnsail_courses.notices import TYPES

    return TYPES


@hookimpl
def learnsail_is_enrolled(user_id, course_id, session):
    from learnsail_courses.access import is_enrolled

    return is_enrolled(session, user_id, course_id)


@hookimpl
def learnsail_user_erased(user_id, session):
    from learnsail_courses.learning import erase_user

    erase_user(session, user_id)
    from learnsail.aftercommit import registry_of

    # student counts and ratings changed: drop the cached course details after the commit
    registry_of(session)["learnsail.cache"].invalidate(session, prefix="courses:detail:")


@hookimpl
def learnsail_user_export(user_id, session):
    from learnsail_courses.learning import export_user

    data = export_user(session, user_id)
    return {"courses": data} if data else None


@hookimpl
def learnsail_demo_data(session, settings):
    from learnsail_courses.demo import load

    return load(session)


@hookimpl
def learnsail_periodic_tasks(settings):
    from learnsail.tasks import Periodic

    interval = int(settings.get(course_settings.PROGRESS_BUFFER_SECONDS) or 0)
    if interval <= 0:
        return []
    return [Periodic("courses.flush_progress", "courses.flush_progress", every=interval)]


@hookimpl
def learnsail_product_quote(kind, ref_id, user, session):
    from learnsail_courses import commerce

    return commerce.quote(session, ref_id, user) if kind == commerce.PRODUCT else None


@hookimpl
def learnsail_order_paid(order, session):
    from learnsail.aftercommit import registry_of

    from learnsail_courses import commerce

    registry = registry_of(session)
    enrolment = commerce.fulfil(session, registry["learnsail.pm"].hook, order)
    if enrolment is not None:  # student_count changed
        registry["learnsail.cache"].invalidate(session, f"courses:detail:{enrolment.course_id}")


@hookimpl
def learnsail_order_refunded(order, session):
    from learnsail.aftercommit import registry_of

    from learnsail_courses import commerce

    registry = registry_of(session)
    enrolment = commerce.revoke(session, registry["learnsail.pm"].hook, order)
    if enrolment is not None:
        registry["learnsail.cache"].invalidate(session, f"courses:detail:{enrolment.course_id}")
