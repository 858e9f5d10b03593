"""The alembic environment: used by every branch, core and plugins."""

from __future__ import annotations

from alembic import context

from learnsail.db import Base, make_engine
import learnsail.identity.models  # noqa: F401  (the core tables)
from learnsail.migrations import owner_of

config = context.config
settings = config.attributes.get("learnsail.settings", {})
installed = config.attributes.get("learnsail.installed", [])
wanted = config.attributes.get("learnsail.branches")


def include_object(obj, name, type_, reflected, compare_to):
    """Compare only the tables of the branches in play (and never the
    alembic bookkeeping table), so a check with the core alone ignores
    plugin tables and an autogenerate for one plugin writes only its own."""
    if type_ == "table":
        if name == "alembic_version":
            return False
        return wanted is None or owner_of(name, installed) in wanted
    table = getattr(obj, "table", None)
    if table is not None and wanted is not None:
        return owner_of(table.name, installed) in wanted
    return True


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(settings)
    with engine.connect() as conn:
        run(conn)
        conn.commit()
    engine.dispose()
