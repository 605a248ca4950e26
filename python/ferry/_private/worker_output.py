"""What a worker prints reaches the driver's terminal line by line, each line
prefixed with the worker's name and pid (the node agent reads the worker's
stdout and stderr: cluster/worker_output.h). A worker names itself with a
marker line the agent does not print: an actor is named after its class by
the Head; a pooled worker announces each remote function it runs, as Ray's
workers do."""
from __future__ import annotations

import os
import sys

# cluster::WorkerOutput::kNameMarker
NAME_MARKER = "\x1eferry-name:"

_current: str | None = None


def line_buffered() -> None:
    """Every line reaches the pipe when printed, not when a block fills."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def announce(name: str) -> None:
    """The lines printed from now on carry `name`."""
    global _current
    if name == _current:
        return
    _current = name
    marker = f"{NAME_MARKER}{name}\n".encode()
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            stream.flush()
            os.write(fd, marker)
        except (OSError, ValueError):  # a closed stream: nothing prints there anyway
            pass
