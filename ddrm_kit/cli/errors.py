"""The one error wrapper of every ``ddrm`` command.

User mistakes (``ValueError``/``OSError``, which every ddrm_kit and operators error is, and an
option value that fails its check) become click's one-line ``Error: ...`` with exit code 1; Ctrl-C
exits with 130 (128 + SIGINT) and one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import click


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (``file: reason`` for OS errors)."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


class Command(click.Command):
    """A click command whose user errors are one line (see the module docstring)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.BadParameter as exc:  # a bad value, not a bad command line: no usage block
            raise click.ClickException(exc.format_message()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except (ValueError, OSError) as exc:
            raise click.ClickException(one_line(exc)) from None


class Group(click.Group):
    """The ``ddrm`` group: its subcommands are :class:`Command`s."""

    command_class = Command
