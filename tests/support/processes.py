"""Child processes that tests start and stop."""

import signal


def default_sigint() -> None:
    """preexec_fn for children that a test stops with SIGINT: a shell that runs
    `make test` in the background (CI, nohup) ignores SIGINT, children inherit
    that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
