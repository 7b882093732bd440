"""The one error a bank statement file raises: where in the file, and why."""

from __future__ import annotations


class StatementError(ValueError):
    """A statement file refused whole: `line` is the 1-based line of the file (for XML, the
    source line of the element at fault), `reason` says what is wrong in a treasurer's words."""

    def __init__(self, line: int, reason: str, filename: str = ""):
        self.line = line
        self.reason = reason
        self.filename = filename
        where = f"{filename}, line {line}" if filename else f"line {line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[StatementError], tuple[int, str, str]]:
        return (type(self), (self.line, self.reason, self.filename))

    def named(self, filename: str) -> StatementError:
        """The same error, naming the file it was found in."""
        return StatementError(self.line, self.reason, filename) if filename else self
