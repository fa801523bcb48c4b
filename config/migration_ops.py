"""Migration helpers for changes to big, busy tables (the request log, the ledger).

Django carries out "drop this column's index" and "unique=True -> UniqueConstraint"
by dropping and re-adding foreign keys and unique constraints in one transaction,
which locks the table and re-checks every row. On PostgreSQL `OnlineIndexChanges`
does the same change without that: DROP INDEX CONCURRENTLY (no lock on writes), and a
RENAME of the existing unique constraint (no rebuild). Other databases (the embedded
SQLite) get Django's own operations.
"""

from __future__ import annotations

from django.db import migrations


class ForVendor(migrations.operations.base.Operation):
    """Database operations chosen by vendor; the state is left to the caller (use it
    inside SeparateDatabaseAndState)."""

    reversible = True

    def __init__(self, *, postgresql: list, other: list) -> None:
        self.postgresql, self.other = postgresql, other

    def state_forwards(self, app_label, state) -> None:
        pass

    @staticmethod
    def _states(operations, app_label, state) -> list:
        """The state before each operation, and after the last."""
        states = [state]
        for operation in operations:
            state = states[-1].clone()
            operation.state_forwards(app_label, state)
            states.append(state)
        return states

    def _chosen(self, schema_editor) -> list:
        return self.postgresql if schema_editor.connection.vendor == "postgresql" else self.other

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        operations = self._chosen(schema_editor)
        states = self._states(operations, app_label, from_state)
        for i, operation in enumerate(operations):
            operation.database_forwards(app_label, schema_editor, states[i], states[i + 1])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        # from_state is the later state; this operation's own state never moves.
        operations = self._chosen(schema_editor)
        states = self._states(operations, app_label, to_state)
        for i in reversed(range(len(operations))):
            operations[i].database_backwards(app_label, schema_editor, states[i + 1], states[i])

    def describe(self) -> str:
        return "Database operations by vendor"


class OnlineIndexChanges:
    """PostgreSQL, outside a transaction: drop every single-column, non-unique index on
    `drop_columns` (Django's foreign-key and LIKE indexes), and give the unique
    constraint on `unique_column` the name `unique_name`. Backwards recreates them
    under Django's names."""

    def __init__(
        self,
        app_label: str,
        model_name: str,
        *,
        drop_columns: list[str],
        unique_column: str,
        unique_name: str,
    ) -> None:
        self.app_label, self.model_name = app_label, model_name
        self.drop_columns, self.unique_column = drop_columns, unique_column
        self.unique_name = unique_name

    def operation(self) -> migrations.RunPython:
        return migrations.RunPython(self.forward, self.backward, atomic=False)

    def forward(self, apps, schema_editor) -> None:
        table = apps.get_model(self.app_label, self.model_name)._meta.db_table
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
            for name, info in constraints.items():
                if (
                    info["index"]
                    and not info["unique"]
                    and not info["primary_key"]
                    and len(info["columns"]) == 1
                    and info["columns"][0] in self.drop_columns
                ):
                    cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")
            for name, info in constraints.items():
                if (
                    info["unique"]
                    and not info["primary_key"]
                    and not info["index"]
                    and info["columns"] == [self.unique_column]
                    and name != self.unique_name
                ):
                    cursor.execute(
                        f"ALTER TABLE {quote(table)} RENAME CONSTRAINT "
                        f"{quote(name)} TO {quote(self.unique_name)}"
                    )

    def backward(self, apps, schema_editor) -> None:
        table = apps.get_model(self.app_label, self.model_name)._meta.db_table
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"ALTER TABLE {quote(table)} RENAME CONSTRAINT "
                f"{quote(self.unique_name)} TO "
                f"{quote(f'{table}_{self.unique_column}_key')}"
            )
            for column in self.drop_columns:
                if column == self.unique_column:
                    continue  # its only other index was the LIKE one, made below
                name = schema_editor._create_index_name(table, [column], suffix="")
                cursor.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(name)} "
                    f"ON {quote(table)} ({quote(column)})"
                )
            like = schema_editor._create_index_name(table, [self.unique_column], suffix="_like")
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(like)} ON "
                f"{quote(table)} ({quote(self.unique_column)} varchar_pattern_ops)"
            )
