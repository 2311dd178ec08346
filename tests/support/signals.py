"""Signals in subprocess tests."""

import signal


def default_sigint() -> None:
    """`preexec_fn` for a child that a test sends Ctrl-C: as in a terminal, SIGINT acts. A test runner started in the
    background (`cmd &`) ignores SIGINT, and its children would inherit that and never see the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
