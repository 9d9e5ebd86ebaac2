"""Alembic's environment for the traceability records: migrations run on the connection
Records hands over (config.attributes["connection"]), inside the transaction that holds
the migration lock; no alembic.ini, no logging set-up."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
