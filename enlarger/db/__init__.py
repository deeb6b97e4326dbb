"""The database: the engine (`engine`), the schema (`schema`), its migrations
(`migrate`) and revision (`revision`), and a connection without SQLAlchemy (`direct`).

Nothing is imported here, so a command that reads through `direct` does not pay for
importing SQLAlchemy."""
