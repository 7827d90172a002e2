"""The one error wrapper of every ``ddrm`` command.

User mistakes (``ValueError``/``OSError``, which every ddrm_kit and operators error is, and an
option value that fails its check) become click's one-line ``Error: ...`` with exit code 1; Ctrl-C
exits with 130 (128 + SIGINT) and one line; anything else is a bug and keeps its traceback.
:class:`Failures` lets a folder run skip its bad images, one line each, and exit non-zero at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")


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


class Failures:
    """Bad images found in folders: each reported on its own line and skipped; any other input stops the run."""

    def __init__(self, found: Iterable[Path]) -> None:
        self.found = set(found)
        self.bad: list[Path] = []

    def attempt(self, paths: Sequence[Path], fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)``, or None once its user error is reported for ``paths`` (see :meth:`fail`)."""
        try:
            return fn(*args)
        except (ValueError, OSError) as exc:
            if not self.skippable(paths):
                raise
            self.fail(paths, one_line(exc))
            return None

    def skippable(self, paths: Sequence[Path]) -> bool:
        return bool(paths) and all(p in self.found for p in paths)

    def fail(self, paths: Sequence[Path], reason: str) -> None:
        """Report ``error: NAME: reason`` for each of ``paths`` found in folders; stop the run for any other."""
        if not self.skippable(paths):
            raise click.ClickException(f"{paths[0].name}: {reason}" if paths else reason)
        for p in paths:
            text = reason.removeprefix(f"{p}: ").removeprefix(f"{p.name}: ")
            click.echo(f"error: {p.name}: {text}", err=True)
            self.bad.append(p)

    def finish(self, total: int) -> None:
        """Exit non-zero after the work when any image was skipped."""
        if self.bad:
            raise click.ClickException(f"{len(self.bad)} of {total} images could not be restored (listed above)")
