"""Typed errors raised by ferry.

``TaskError`` is what ``ferry.get`` raises when the remote method raised: the
instance is also an instance of the user's exception class (``except
ValueError`` works) and carries the remote traceback. The others are system
errors: the actor died, the object is gone, the wait timed out.
"""


class FerryError(Exception):
    """Base class of every ferry error."""


class TaskError(FerryError):
    """A remote method raised. ``cause`` is the original exception (when it
    could be transported), ``traceback_str`` the remote traceback."""

    def __init__(self, method_name="", traceback_str="", cause=None):
        super().__init__(traceback_str)
        self.method_name = method_name
        self.traceback_str = traceback_str
        self.cause = cause

    def __str__(self):
        kind = type(self.cause).__name__ if self.cause is not None else "Exception"
        return f"{kind} raised in actor method {self.method_name!r}:\n{self.traceback_str}"

    def __reduce__(self):
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


_derived_classes = {}


def _rebuild_task_error(method_name, traceback_str, cause):
    return make_task_error(method_name, traceback_str, cause)


def make_task_error(method_name, traceback_str, cause):
    """A TaskError that is also an instance of ``type(cause)``."""
    if cause is None or isinstance(cause, TaskError):
        return cause if cause is not None else TaskError(method_name, traceback_str, None)
    cls = type(cause)
    derived = _derived_classes.get(cls)
    if derived is None:
        try:
            derived = type(f"TaskError({cls.__name__})", (TaskError, cls),
                           {"__module__": __name__, "__init__": TaskError.__init__})
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


# The one table from ferry's status codes (include/ferry/status.h) to Python
# exceptions; the C++ binding raises through it too.
_BY_CODE = {
    3: ValueError,              # INVALID_ARGUMENT
    4: GetTimeoutError,         # DEADLINE_EXCEEDED
    5: ValueError,              # NOT_FOUND
    6: ValueError,              # ALREADY_EXISTS
    9: CollectiveGroupError,    # FAILED_PRECONDITION
    10: TransportError,         # ABORTED
    12: NotImplementedError,    # UNIMPLEMENTED
    14: ActorDiedError,         # UNAVAILABLE
    15: ObjectLostError,        # DATA_LOSS
    100: TaskError,             # TASK_ERROR (without a transported exception)
}


def error_for_status(code, message):
    """The exception to raise for a non-OK status (code, message)."""
    cls = _BY_CODE.get(code, FerryError)
    if cls is TaskError:
        return TaskError("", message, None)
    return cls(message)
