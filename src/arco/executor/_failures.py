"""How a failure is reported: the exception chain, a stack trace without the executor's frames, a bounded message."""

from __future__ import annotations

import traceback
from collections.abc import Iterable

#: Longest stack trace reported (the end is kept: it holds the failing frame and the exception).
STACK_TRACE_LIMIT = 8 * 1024
#: Longest error message reported.
MESSAGE_LIMIT = 2000
#: Frames of these modules are cut from reported stack traces.
_EXECUTOR_PACKAGE = "arco.executor."


def exception_chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and the exceptions it was raised from or during, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def stack_trace(exc: BaseException) -> str:
    """The stack trace of ``exc`` from its first frame outside the executor, its end kept within the limit."""
    tb = exc.__traceback__
    # The executor's own frames say nothing about the failure: start at the first frame of other code.
    while tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_EXECUTOR_PACKAGE):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if len(text) <= STACK_TRACE_LIMIT:
        return text
    tail = text[-(STACK_TRACE_LIMIT - 80) :]
    return f"... ({len(text) - len(tail)} characters of the stack trace cut)\n{tail}"


def error_message(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, within the limit (also for an exception whose text cannot be rendered)."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ fails must still end the attempt with a report
        text = f"{type(exc).__name__} (its message could not be rendered; see the stack trace)"
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."
