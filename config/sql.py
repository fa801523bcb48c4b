"""Small helpers for the few statements written in SQL (set-based batch writes)."""

from __future__ import annotations

from django.db import connection
from django.db.models import Field


def column_base_type(field: Field) -> str:
    """The column's type without its size (varchar, not varchar(40)), for casts in a
    json_to_recordset row type: a value too long for the column still fails the insert
    instead of being cut short by the cast."""
    db_type = field.db_type(connection)
    if db_type is None:  # a field without a column of its own (a ManyToManyField)
        raise TypeError(f"{field!r} has no database column")
    return db_type.split("(")[0]
