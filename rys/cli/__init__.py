"""The `rys` command line: one click group, verb subcommands.

Only this group turns RysError into a one-line message and exit status 1;
any other exception is a bug and keeps its traceback. The commands live by
stage: surgery.py (inspect, build, verify), serving.py (serve, probe),
search.py (sweep, rank, report), prune.py (prune),
checkpoints.py (convert, quantize, eval).
"""

from __future__ import annotations

import click

from .. import __version__
from ..core.errors import RysError
from .checkpoints import convert_command, eval_command, quantize_command
from .prune import prune_command
from .search import rank_command, report_command, sweep_command
from .serving import probe_command, serve_command
from .surgery import build_command, inspect_command, verify_command


class RysGroup(click.Group):
    """A group whose commands report RysError as `Error: message`, exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RysError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=RysGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rys")
def cli():
    """rys: layer surgery and circuit search on GGUF language models.

    \b
    Examples:
      rys inspect Qwen3.5-4B-Q4_K_M.gguf
      rys build Qwen3.5-4B-Q4_K_M.gguf 27-30
      rys verify Qwen3.5-4B-Q4_K_M-rys_27-30.gguf
      rys sweep Qwen3.5-4B-Q4_K_M.gguf --preset seed-pass1
      rys rank sweeps/seed-pass1/Qwen3.5-4B-Q4_K_M
      rys report sweeps/seed-pass1/Qwen3.5-4B-Q4_K_M
    """


for _command in (inspect_command, build_command, verify_command, serve_command, probe_command,
                 sweep_command, rank_command, report_command, prune_command, convert_command, quantize_command,
                 eval_command):
    cli.add_command(_command)


def main():
    cli()
