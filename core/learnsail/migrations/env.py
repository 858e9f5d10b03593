"""The alembic environment: used by every branch, core and plugins."""

from __future__ import annotations

from alembic import context

from learnsail.db import Base, make_engine
import learnsail.core_models  # noqa: F401  (the core tables)
from learnsail.migrations import table_owner

config = context.config
settings = config.attributes.get("learnsail.settings", {})
installed = config.attributes.get("learnsail.installed", [])
wanted = config.attributes.get("learnsail.branches")


def include_object(obj, name, type_, reflected, compare_to):  # same rule as migrations.check
    """Compare only the tables of the branches in play (and never the
    alembic bookkeeping table), so a check with the core alone ignores
    plugin tables and an autogenerate for one plugin writes only its own."""
    if type_ == "table":
        if name == "alembic_version":
            return False
        return table_owner(None if reflected else obj, name, installed) in wanted
    table = getattr(obj, "table", None)
    if table is not None:
        return table_owner(None if reflected else table, table.name, installed) in wanted
    return True


def drop_tables_not_their_indexes(context_, revision, directives) -> None:
    """Autogenerate writes ``drop_index`` before ``drop_table`` in a
    downgrade; MySQL refuses to drop an index a foreign key needs, and the
    table's indexes go with the table anyway.  Keep only the drop_table."""
    from alembic.operations import ops

    for script in directives:
        for downgrade in script.downgrade_ops_list:
            dropped = {op.table_name for op in downgrade.ops if isinstance(op, ops.DropTableOp)}
            kept = []
            for op in downgrade.ops:
                if isinstance(op, ops.DropIndexOp) and op.table_name in dropped:
                    continue
                if isinstance(op, ops.ModifyTableOps) and op.table_name in dropped:
                    op.ops = [sub for sub in op.ops if not isinstance(sub, ops.DropIndexOp)]
                    if not op.ops:
                        continue
                kept.append(op)
            downgrade.ops = kept


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
        process_revision_directives=drop_tables_not_their_indexes,
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
