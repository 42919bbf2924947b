"""What the commands share: SIGTERM handling and the layer map."""

from __future__ import annotations

import signal

import click


def sigterm_as_interrupt() -> None:
    """Let SIGTERM unwind like Ctrl-C so temporary files and servers are cleaned up."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def runs(kinds: list[str]) -> list[tuple[int, int, str]]:
    """Consecutive layers of one kind: ['a', 'a', 'b'] -> [(0, 1, 'a'), (2, 2, 'b')]."""
    out: list[tuple[int, int, str]] = []
    for i, k in enumerate(kinds):
        if out and out[-1][2] == k and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i, k)
        else:
            out.append((i, i, k))
    return out


def print_layer_map(kinds: list[str]) -> None:
    for a, b, k in runs(kinds):
        span = f"{a}-{b}" if b != a else f"{a}"
        click.echo(f"    {span:<9}{k}")
