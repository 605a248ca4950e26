"""Typed errors raised by ferry.

``TaskError`` is what ``ferry.get`` raises when the remote method raised: the
instance is also an instance of the user's exception class (``except
ValueError`` works) and carries the remote traceback. The others are system
errors: the actor died, the object is gone, the wait timed out.
"""
from __future__ import annotations

from typing import Any, cast

from ferry import _core


class FerryError(Exception):
    """Base class of every ferry error."""


class TaskError(FerryError):
    """A remote method raised. ``cause`` is the original exception (when it
    could be transported), ``traceback_str`` the remote traceback."""

    def __init__(self, method_name: str = "", traceback_str: str = "",
                 cause: BaseException | None = None) -> None:
        super().__init__(traceback_str)
        self.method_name = method_name
        self.traceback_str = traceback_str
        self.cause = cause

    def __str__(self) -> str:
        kind = type(self.cause).__name__ if self.cause is not None else "Exception"
        return f"{kind} raised in actor method {self.method_name!r}:\n{self.traceback_str}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_task_error, (self.method_name, self.traceback_str, self.cause))


class ActorDiedError(FerryError):
    """The actor's process is gone (killed, crashed, or its constructor
    failed); the message says which."""


class ObjectLostError(FerryError):
    """The object's value can no longer be fetched (freed, or its owner or
    producer died)."""


class GetTimeoutError(FerryError, TimeoutError):
    """``ferry.get`` (or another bounded wait) timed out."""


class CollectiveGroupError(FerryError):
    """A collective group is missing, destroyed, or misused."""


class TransportError(FerryError):
    """A tensor transport failed (peer died, timeout, library error)."""


_derived_classes: dict[type, type[TaskError]] = {}


def _rebuild_task_error(method_name: str, traceback_str: str,
                        cause: BaseException | None) -> TaskError:
    return make_task_error(method_name, traceback_str, cause)


def make_task_error(method_name: str, traceback_str: str,
                    cause: BaseException | None) -> TaskError:
    """A TaskError that is also an instance of ``type(cause)``."""
    if cause is None or isinstance(cause, TaskError):
        return cause if cause is not None else TaskError(method_name, traceback_str, None)
    cls = type(cause)
    derived = _derived_classes.get(cls)
    if derived is None:
        try:
            made = type(f"TaskError({cls.__name__})", (TaskError, cls),
                        {"__module__": __name__, "__init__": TaskError.__init__})
            derived = cast("type[TaskError]", made)
        except TypeError:  # incompatible layout: plain TaskError
            derived = TaskError
        _derived_classes[cls] = derived
    try:
        err = derived.__new__(derived)
        TaskError.__init__(err, method_name, traceback_str, cause)
        err.args = cause.args
        if derived is not TaskError and hasattr(cause, "__dict__"):
            for k, v in vars(cause).items():
                err.__dict__.setdefault(k, v)
    except Exception:  # an exception class with an unusual constructor
        err = TaskError(method_name, traceback_str, cause)
    return err


# ferry's status codes (include/ferry/status.h) by name, as the runtime
# reports them.
_STATUS_CODES: dict[str, int] = _core.status_codes()
# The code of an error raised by user code in an actor method.
TASK_ERROR: int = _STATUS_CODES["TASK_ERROR"]

# The one table from status codes to Python exceptions; the C++ binding
# raises through it too.
_BY_NAME: dict[str, type[Exception]] = {
    "INVALID_ARGUMENT": ValueError,
    "DEADLINE_EXCEEDED": GetTimeoutError,
    "NOT_FOUND": ValueError,
    "ALREADY_EXISTS": ValueError,
    "FAILED_PRECONDITION": CollectiveGroupError,
    "ABORTED": TransportError,
    "UNIMPLEMENTED": NotImplementedError,
    "UNAVAILABLE": ActorDiedError,
    "DATA_LOSS": ObjectLostError,
    "TASK_ERROR": TaskError,  # without a transported exception
}
_BY_CODE: dict[int, type[Exception]] = {_STATUS_CODES[name]: cls for name, cls in _BY_NAME.items()}


def error_for_status(code: int, message: str) -> Exception:
    """The exception to raise for a non-OK status (code, message)."""
    cls = _BY_CODE.get(code, FerryError)
    if cls is TaskError:
        return TaskError("", message, None)
    return cls(message)


# Ray's names for these errors (``ray.exceptions``), so a Ray program's
# ``except`` clauses work unchanged on ferry (docs/ray-compat.md). Ray's
# ActorDiedError, GetTimeoutError and ObjectLostError have the same names
# here. Ray's names without a ferry counterpart are left out, so that the
# Ray compatibility layer reports them instead of catching the wrong errors:
# OwnerDiedError and ObjectFreedError (ferry raises ObjectLostError for
# both), RaySystemError, ActorUnavailableError, TaskCancelledError and the
# rest.
# Ray's base class of its errors.
RayError = FerryError
# A remote method raised; as in Ray, also an instance of the user's
# exception class, with ``cause`` and the remote traceback.
RayTaskError = TaskError
# Ray's base class of ActorDiedError; ferry has one class for a dead actor.
RayActorError = ActorDiedError
