"""The plugin's one table.  Table names start with the plugin's name
(``bookmarks_``), so they belong to the plugin's alembic branch."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from learnsail.db import Base, TimestampMixin

URL_MAX_LENGTH = 2048
TITLE_MAX_LENGTH = 200


def url_digest(url: str) -> str:
    """SHA-256 of the exact URL, hex: what uniqueness is checked on.

    A unique key on the 2048-character ``url`` itself is too long for MySQL
    (8192 bytes in utf8mb4; InnoDB keys stop at 3072), and MariaDB's
    automatic hash key would compare it case-insensitively under the
    default ``utf8mb4_unicode_ci`` collation, where ``/Guide`` and
    ``/guide`` are different pages.  The digest is short and exact.
    """
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


class Bookmark(TimestampMixin, Base):
    __tablename__ = "bookmarks_bookmarks"
    __table_args__ = (
        # one bookmark per URL per user (uq_bookmarks_bookmarks_user_id_url_hash)
        sa.UniqueConstraint("user_id", "url_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(URL_MAX_LENGTH))
    url_hash: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.String(TITLE_MAX_LENGTH))
    note: Mapped[str | None] = mapped_column(sa.Text)

    @validates("url")
    def _keep_url_hash(self, _key: str, url: str) -> str:
        self.url_hash = url_digest(url)
        return url
