"""aria_data's errors (re-exported by ``api.py``).

* ``DataError`` (an ``AriaError``)

  * ``DatabaseUnavailable``: the database did not answer within the timeout (names host and port).

    * ``ConnectionLost``: the connection broke while a statement was in flight, so whether it
      took effect is unknown; it is not retried automatically.

  * ``AuthenticationFailed``: the server refused the credentials (names user, host and port).
  * ``QueryError``: the database refused a statement; ``sqlstate`` says why.

    * ``SerializationFailure``: SQLSTATE 40001; the transaction may be retried (``transact`` does).
    * ``UniqueViolation``: SQLSTATE 23505.
    * ``QueryTimeout``: the statement ran longer than ``data.statement_timeout``.

  * ``MigrationError``: a migration file is malformed, or was edited after it was applied.
  * ``EngineError``: no database engine could be found or started; the message says how to fix it.
"""

from __future__ import annotations

from aria.errors import AriaError


class DataError(AriaError):
    """Base class of aria_data's errors."""


class DatabaseUnavailable(DataError):
    def __init__(self, host: str, port: int, waited: float, reason: str) -> None:
        self.host = host
        self.port = port
        super().__init__(f"the database at {host}:{port} is unavailable (waited {waited:g} s): {reason}")


class ConnectionLost(DatabaseUnavailable):
    def __init__(self, host: str, port: int, reason: str) -> None:
        DataError.__init__(
            self,
            f"the connection to {host}:{port} broke while a statement was running ({reason}); "
            "whether it took effect is unknown",
        )
        self.host = host
        self.port = port


class AuthenticationFailed(DataError):
    def __init__(self, user: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"the database at {host}:{port} refused user {user!r}: {reason}")


class QueryError(DataError):
    def __init__(self, message: str, sqlstate: str = "") -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class SerializationFailure(QueryError):
    """SQLSTATE 40001: the transaction conflicted with another one and was rolled back."""


class UniqueViolation(QueryError):
    """SQLSTATE 23505."""


class QueryTimeout(QueryError):
    """The statement exceeded ``data.statement_timeout``."""


class MigrationError(DataError):
    """A migration is malformed or was changed after it was applied; boot stops."""


class EngineError(DataError):
    """No database engine could be found or prepared."""
