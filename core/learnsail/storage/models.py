"""The storage tables (core branch): one row per stored file, so plugins
refer to files by id (004 §2.9: metadata, category, relations, owner,
access, preview)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from learnsail.db import Base, TimestampMixin

#: who may read a file besides its owner and admins (a plugin's
#: ``learnsail_file_access`` answer comes first for attached files)
VISIBILITIES = ("private", "authenticated", "public")


class StoredFile(TimestampMixin, Base):
    """A file in storage: its object key, what it is and who may see it.

    ``related_type`` / ``related_id`` attach it to a plugin's object
    (``"courses.lesson"``, ``"42"``); the plugin owning that type answers
    the ``learnsail_file_access`` hook for it.  Deleting sets
    ``deleted_at`` and removes the object from storage after the commit.
    """

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(primary_key=True)
    storage_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    #: the name shown and offered on download (sanitised; never a path)
    name: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    mime_type: Mapped[str] = mapped_column(sa.String(100), index=True)
    #: image, document, text, archive, audio, video, other (from the content)
    kind: Mapped[str] = mapped_column(sa.String(20), index=True)
    #: a label the uploader or a plugin chooses ("avatar", "course_cover", ...)
    category: Mapped[str] = mapped_column(sa.String(50), default="", server_default="", index=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(20), default="private", server_default="private")
    related_type: Mapped[str | None] = mapped_column(sa.String(50))
    related_id: Mapped[str | None] = mapped_column(sa.String(64))
    width: Mapped[int | None]
    height: Mapped[int | None]
    page_count: Mapped[int | None]
    #: the stored thumbnail of an image (made at upload, or on first preview)
    preview_key: Mapped[str | None] = mapped_column(sa.String(255))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(index=True)


# a plugin lists the files of one of its objects
sa.Index("ix_files_related", StoredFile.related_type, StoredFile.related_id)
