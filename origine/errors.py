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


class StorageError(OrigineError):
    """The home cannot be written: disk full, quota, read-only or permission (exit 1).

    Raised instead of the storage layer's own error (DuckDB, SQLite, the OS), which
    names neither the cause plainly nor what to do; nothing was committed.
    """

    exit_code = 1


_FULL = ("no space left", "file too large", "disk quota", "database or disk is full", "disk i/o error")
_READ_ONLY = ("read-only file system", "permission denied", "operation not permitted", "readonly database")


def storage_problem(exc: BaseException | str, home: object | None = None) -> StorageError | None:
    """A :class:`StorageError` when ``exc`` (an exception or an error's text) is the home's
    storage failing, else ``None``."""
    import errno

    code = getattr(exc, "errno", None) if isinstance(exc, BaseException) else None
    text = str(exc).lower()
    where = f"the home {home}" if home is not None else "the home"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(s in text for s in _FULL):
        return StorageError(
            f"disk full: cannot write in {where} ({detail}); nothing was committed: "
            "free space and run it again"
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or any(s in text for s in _READ_ONLY):
        return StorageError(
            f"{where} is read-only or not writable by this user ({detail}); nothing was committed: "
            "make it writable and run it again"
        )
    return None
