"""Work that must happen only once the current transaction has committed.

Side effects -- a Celery task, a realtime event, an email -- are queued on
the transaction and run by an after-commit hook, so a request that fails
leaves no trace outside the database (ARCHITECTURE.md, rule 3).

``target`` is what the caller has at hand: the request, a request's (or a
task's) SQLAlchemy session, a task's context, or the registry itself (then
the thread's default transaction manager, unless ``tm`` is given).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import transaction

log = logging.getLogger("learnsail.aftercommit")


def registry_of(target: Any) -> Any:
    """The registry of a request, of a request's or task's session, of a
    task context, or ``target`` itself."""
    info = getattr(target, "info", None)
    if isinstance(info, dict) and "learnsail.registry" in info:
        return info["learnsail.registry"]
    return getattr(target, "registry", target)


def manager_of(target: Any, tm: Any = None) -> Any:
    """The transaction manager whose commit releases the queued work."""
    if tm is not None:
        return tm
    manager = getattr(target, "tm", None)
    if manager is not None:
        return manager
    info = getattr(target, "info", None)
    if isinstance(info, dict) and info.get("learnsail.tm") is not None:
        return info["learnsail.tm"]
    return transaction.manager


def on_commit(target: Any, func: Callable[..., None], *args: Any, tm: Any = None,
              what: str = "") -> None:
    """Call ``func(*args)`` after the current transaction of ``target``
    commits; never when it aborts.  An exception raised by ``func`` is
    logged (with ``what``) and does not reach the committed caller."""
    manager_of(target, tm).get().addAfterCommitHook(_run, (func, args, what or getattr(func, "__name__", "")))


def _run(committed: bool, func: Callable[..., None], args: tuple, what: str) -> None:
    if not committed:
        return
    try:
        func(*args)
    except Exception:  # the transaction is committed; the failure is the operator's to see
        log.exception("after-commit work failed: %s", what)
