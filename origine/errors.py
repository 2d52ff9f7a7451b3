"""Errors that reach users, and the exit status each one maps to."""

from __future__ import annotations


class OrigineError(Exception):
    """Base class for errors origine reports to its users (never with a raw number)."""

    exit_code = 1


class BadInput(OrigineError):
    """Input the user must fix: names the file, row and column, exits with status 2.

    ``row`` is the 1-based data row (the header is not counted), ``None`` when the
    problem concerns the whole file; ``column`` is the column's name as delivered.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: ``file, row N, column C: message`` with what is known."""
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class HashKeyError(OrigineError):
    """The hashing key is missing, malformed or not allowed here (exit 2).

    Messages name the variable or file, never the key's bytes.
    """

    exit_code = 2


class DeliveryConflict(BadInput):
    """The same (vendor, delivery_id) arrived again with different bytes."""
