"""Import every module that defines core tables, so ``Base.metadata`` is
complete (migrations, ``learnsail db check``)."""

from __future__ import annotations

import learnsail.identity.models  # noqa: F401
import learnsail.notifications.models  # noqa: F401
import learnsail.storage.models  # noqa: F401
import learnsail.webhooks.models  # noqa: F401
