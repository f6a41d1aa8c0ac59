"""Child processes that a test interrupts with SIGINT, as Ctrl-C at a terminal would.

A shell without job control (a CI script's ``cmd &``, ``setsid``) starts background jobs with
SIGINT ignored, children inherit that, and Python then never raises KeyboardInterrupt: give the
child the terminal's default disposition (``Popen(..., preexec_fn=default_sigint)``)."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
