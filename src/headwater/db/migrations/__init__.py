"""Alembic migration scripts of the headwater database (run by :meth:`headwater.db.Database.upgrade`).

There is no ``alembic.ini``: :mod:`headwater.db.migrate` configures Alembic in code and hands it an
open connection. A new revision goes in ``versions/`` with the next number as its id
(``0003_...py``, ``revision = "0003"``), and must leave the schema equal to
:mod:`headwater.db.schema` (``tests/db/test_migrations.py`` compares them).
"""
