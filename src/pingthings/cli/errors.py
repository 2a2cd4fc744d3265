"""Turn the errors a user can cause into one line on stderr and a documented exit code.

Exit codes of the ``pingthings`` command:

====  ==========================================================================
0     success
1     the server refused the operation (any other pingthings / BTrDB error)
2     usage error: unknown option, bad argument, unparsable time string, unusable connection
      settings (no endpoint, unknown profile, missing credentials file, malformed endpoint)
3     cannot reach or authenticate with the server (connection refused, TLS, key)
4     the stream (or collection) named does not exist
5     ``serve``: the server could not start (address in use, data directory unusable or locked)
130   interrupted (Ctrl-C)
====  ==========================================================================

Programming errors (anything not recognised here) still raise, so bugs keep their traceback.
"""

from __future__ import annotations

import builtins
import socket
import ssl

import click

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_NOT_FOUND = 4
EXIT_SERVER_START = 5
EXIT_INTERRUPTED = 130

#: Class names (anywhere in the exception's MRO) that mean "the stream does not exist".
_NOT_FOUND_NAMES = frozenset({"StreamNotFound", "StreamNotFoundError", "NoSuchStream", "UnknownStream"})
#: Class names that mean "could not reach or authenticate with the server".
_CONNECTION_NAMES = frozenset(
    {"ConnectionError", "TransportError", "PermissionDenied", "PermissionDeniedError"}
)
#: Class names that mean "the connection settings are wrong" (credentials file, profile, endpoint).
_SETTINGS_NAMES = frozenset({"CredentialsError", "CredentialsFileNotFound", "ProfileNotFound"})
#: v5 status codes that mean "no such stream".
_NOT_FOUND_CODES = frozenset({404})
#: v5 status code that means "the key was refused".
_UNAUTHORIZED_CODES = frozenset({437})


class UserError(click.ClickException):
    """An error the user can fix, shown as ``Error: <message>`` with a chosen exit code.

    Parameters
    ----------
    message
        One line saying what went wrong and, where possible, what to do.
    exit_code
        The process exit code (see the module docstring).
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar; we vary it per error


def _mro_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _connection_reason(exc: BaseException, endpoint: str | None) -> str:
    """Why a connection failed, in a few words, without repeating the endpoint."""
    root = _root_cause(exc)
    if isinstance(root, ConnectionRefusedError):
        return "connection refused (is a server running there?)"
    if isinstance(root, socket.gaierror):
        return f"unknown host ({root.strerror})"
    if isinstance(root, TimeoutError) and not _from_pingthings(root):
        return "timed out"
    text = _one_line(exc)
    if endpoint:
        text = text.replace(f" [{endpoint}]", "").replace(f" at {endpoint}", "")
    return text


def _from_pingthings(exc: BaseException) -> bool:
    return any(cls.__module__.startswith(("pingthings.", "btrdb.")) for cls in type(exc).__mro__[:-1])


def user_error(exc: BaseException, endpoint: str | None = None) -> UserError | None:
    """Classify ``exc``; return the :class:`UserError` to show, or ``None`` if it is a bug.

    Parameters
    ----------
    exc
        The exception raised while running a command.
    endpoint
        The endpoint the command talked to, named in connection errors.
    """
    if isinstance(exc, UserError):
        return exc
    names = _mro_names(exc)
    code = _status_code(exc)
    where = f" {endpoint}" if endpoint else ""
    if names & _NOT_FOUND_NAMES or code in _NOT_FOUND_CODES:
        return UserError(_one_line(exc), EXIT_NOT_FOUND)
    if names & _SETTINGS_NAMES:
        return UserError(_one_line(exc), EXIT_USAGE)
    if code in _UNAUTHORIZED_CODES:
        return UserError(f"the server{where} refused the API key: {_one_line(exc)}", EXIT_CONNECTION)
    if isinstance(exc, ssl.SSLError):
        return UserError(f"TLS handshake with{where} failed: {_one_line(exc)}", EXIT_CONNECTION)
    if isinstance(exc, builtins.ConnectionError | TimeoutError) or names & _CONNECTION_NAMES:
        where = f" at {endpoint}" if endpoint else ""
        return UserError(f"cannot connect to the server{where}: {_connection_reason(exc, endpoint)}",
                         EXIT_CONNECTION)
    if isinstance(exc, OSError) and not _from_pingthings(exc):
        return UserError(_one_line(exc), EXIT_FAILURE)
    if _from_pingthings(exc):
        return UserError(_one_line(exc), EXIT_FAILURE)
    return None
