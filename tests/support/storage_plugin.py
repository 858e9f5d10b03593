"""A plugin used only by the storage tests: it owns the related type
``filetest.box`` and answers ``learnsail_file_access`` for files attached
to boxes:

- box ``open``: anyone signed in may read, nobody else may write;
- box ``closed``: nobody but the owner and admins (even if the file is public);
- box ``shared``: anyone signed in may read and write;
- any other box: no answer (the file's visibility decides).
"""

from __future__ import annotations

from learnsail import hookimpl
from learnsail.plugins import PluginInfo

PLUGIN = PluginInfo(name="filetest", version="1.0", migrations=None)

#: (user id or None, file id, action) of every question asked
CALLS: list[tuple[int | None, int, str]] = []


@hookimpl
def learnsail_file_access(user, file, action, session):
    if file.related_type != "filetest.box":
        return None
    CALLS.append((user.id if user is not None else None, file.id, action))
    if file.related_id == "open":
        return user is not None and action == "read"
    if file.related_id == "closed":
        return False
    if file.related_id == "shared":
        return user is not None
    return None
