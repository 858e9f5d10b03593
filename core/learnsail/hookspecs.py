"""The platform hooks: the seams between the core and the plugins.

Every hook is documented here (these docstrings are the plugin authors'
reference, reproduced in docs/hooks.md) and has a test in tests/.  A plugin
implements a hook with ``@learnsail.hookimpl`` on a function of the same
name in its ``plugin.py``; a misspelled name stops start-up.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("learnsail")
hookimpl = pluggy.HookimplMarker("learnsail")


# --- wiring ---------------------------------------------------------------

@hookspec
def learnsail_settings():
    """Declare the plugin's settings.

    Return a list of :class:`learnsail.settings.Setting`, named
    ``learnsail.<plugin>.<key>``, each with a default and a description.
    Their values are then read from the ini file and from the environment
    variable ``LEARNSAIL_<PLUGIN>_<KEY>`` and found in ``registry.settings``.
    """


@hookspec
def learnsail_includeme(config):
    """Register the plugin's routes, Cornice services and views.

    ``config`` is the Pyramid ``Configurator``.  Register services with
    ``config.add_learnsail_service(service)``; only register, do no I/O.
    Called once per app, in dependency order (requirements first).
    """


@hookspec
def learnsail_permissions():
    """Declare permissions and the roles that hold them by default.

    Return a dict ``{"<plugin>:<resource>:<action>": ["admin", "teacher", ...]}``.
    The security policy grants a permission to a caller whose role is listed.
    """


@hookspec
def learnsail_periodic_tasks(settings):
    """Declare the plugin's periodic tasks (run by ``learnsail beat``).

    Return a list of :class:`learnsail.tasks.Periodic`: a name, the name of
    a task the plugin declared with :func:`learnsail.tasks.task`, and a
    schedule (``every=`` seconds or ``cron=`` a crontab expression).
    ``settings`` are the app's settings, so intervals can be configurable.
    """


@hookspec
def learnsail_demo_data(session, settings):
    """Load the plugin's sample data for ``learnsail init`` (the demo).

    ``session`` is a SQLAlchemy session inside a transaction the command
    commits.  Must be idempotent: ``learnsail init`` runs it every time, so
    check before inserting.  Return a short human summary (str) or None.
    """


# --- operations -----------------------------------------------------------

@hookspec
def learnsail_health_checks(registry):
    """Contribute checks to ``GET /healthz``.

    Return a dict ``{name: check}``; ``check()`` returns nothing when the
    dependency is healthy and raises (any exception, with a useful message)
    when it is not.  A failing check makes /healthz answer 503.
    """


@hookspec
def learnsail_prometheus_collectors(registry, metrics_registry):
    """Add Prometheus metrics to ``/metrics``.

    ``metrics_registry`` is the app's ``prometheus_client.CollectorRegistry``:
    create counters/gauges/histograms with ``registry=metrics_registry`` (or
    register a custom collector) and keep a reference to update them.
    """


# --- identity -------------------------------------------------------------

@hookspec
def learnsail_user_created(user, session):
    """A user account was created (``user`` is the new ``User``), in the
    creating transaction.  Create per-user rows (profile, wallet...) here."""


@hookspec
def learnsail_login_new_device(user, event, session):
    """``user`` signed in from an IP and browser never seen for them before.

    ``event`` is the ``LoginEvent`` (ip, user_agent, method, created_at).
    Notify the user (the notification service implements this), in the
    sign-in transaction.  Not called for the account's very first sign-in.
    """


@hookspec
def learnsail_user_erased(user_id, session):
    """The account ``user_id`` is being erased (right to erasure).

    Delete or anonymise every row of personal data the plugin holds for the
    user, in the same transaction.  Keep records the law requires (orders)
    but strip what identifies the person.
    """


@hookspec
def learnsail_user_export(user_id, session):
    """Return the plugin's personal data for ``user_id`` (data portability)
    as a JSON-serialisable dict, or None when it holds none."""


# --- commerce -------------------------------------------------------------

@hookspec(firstresult=True)
def learnsail_product_quote(kind, ref_id, user, session):
    """Price a product for ``user``.

    ``kind`` names the product type (``"course"``, ``"appointment"`` ...) and
    ``ref_id`` its id.  The plugin that sells ``kind`` returns a dict
    ``{"title": str, "price": Decimal, "currency": "CNY", "purchasable": bool,
    "reason": str | None}``, optionally with ``"image_url"`` (a picture of the
    product for order pages) and ``"found": False`` when the product does
    not exist (the buyer gets a 404 rather than a refusal); the others
    return None.  ``reason`` says why ``purchasable`` is false (``"Already
    enrolled."``).  The first answer wins; None overall means nobody sells
    ``kind``.
    """


@hookspec
def learnsail_order_paid(order, session):
    """An order moved to paid: fulfil it (enrol, book...) in the same
    transaction.  Ignore orders for kinds the plugin does not sell.

    ``order`` is the payments plugin's order, read through these attributes
    only: ``id``, ``order_no``, ``user_id``, ``product_type``,
    ``product_id`` (an int), ``title``, ``currency``, ``amount`` (the Decimal
    paid), ``paid_at`` (aware UTC), ``status``, ``refunded_amount``.
    Raising aborts the payment's transaction (the gateway then retries).
    """


@hookspec
def learnsail_order_refunded(order, session):
    """A refund of ``order`` completed (the same attributes as for
    ``learnsail_order_paid``): ``order.status`` is ``"refunded"`` when the
    whole amount went back, ``"partially_refunded"`` while some is kept
    (``order.refunded_amount`` says how much went back in all).  Revoke what
    was granted when it is fully refunded; a partial refund usually keeps it.
    """


@hookspec(firstresult=True)
def learnsail_member_until(user_id, session):
    """Is ``user_id`` a member (for member-only courses and videos)?

    The plugin that sells memberships answers the aware UTC datetime the
    membership runs until, ``True`` for an open-ended one, or ``False``; no
    answer (None) means no membership.  Asked whenever member-only content
    is opened, so keep it to one query.
    """


# --- access ---------------------------------------------------------------

@hookspec(firstresult=True)
def learnsail_is_enrolled(user_id, course_id, session):
    """Is ``user_id`` enrolled in ``course_id``?  The plugin that owns
    enrolment answers True or False; None means "nobody knows" (the caller
    then decides, usually by staying open)."""


# --- realtime -------------------------------------------------------------

@hookspec(firstresult=True)
def learnsail_channel_authorize(user, channel, session):
    """May ``user`` subscribe to the realtime ``channel`` (a string such as
    ``"live:42"``)?  The plugin owning the channel's prefix answers True or
    False; None for channels it does not own.  Unanswered means denied.

    Called by the realtime gateway (outside any request) with ``session``, a
    short-lived read-only SQLAlchemy session.
    """


# --- services -------------------------------------------------------------

@hookspec
def learnsail_notification_types():
    """Declare the notification types the plugin sends.

    Return a list of :class:`learnsail.notifications.NotificationType`: a
    name (``"<plugin>.<what>"``), a description shown in the preferences, and
    the channels on by default (``in_app``, ``email``, ``sms``).  Users change
    their own preferences per type and channel.
    """


@hookspec
def learnsail_webhook_events():
    """Declare the event types the plugin emits to webhooks.

    Return a dict ``{"<plugin>.<event>": "description"}``.  Emit one with
    :func:`learnsail.webhooks.emit` in the transaction that makes the change.
    Admins subscribe endpoints to declared types only.
    """


@hookspec(firstresult=True)
def learnsail_file_access(user, file, action, session):
    """May ``user`` (None when anonymous) ``action`` (``"read"`` or
    ``"write"``) the stored ``file`` (a :class:`learnsail.storage.models.StoredFile`)?

    Asked for files that a plugin attached to its own objects
    (``file.related_type`` names the plugin's object, e.g. ``"courses.lesson"``):
    the plugin owning that type answers True or False, others None.  Owners
    and admins always may; unanswered means the file's own visibility rule.
    """


# --- analytics ------------------------------------------------------------

@hookspec
def learnsail_metrics(session, since, until):
    """Contribute the plugin's figures to the analytics dashboards.

    Return a dict ``{"<plugin>.<figure>": number}`` computed over the period
    [since, until) (aware UTC datetimes), or None.
    """
