"""What the command lines (train_agent.py, evaluate.py) share: flag spelling, one-line errors, device checks.

Flags are spelled with hyphens (``--n-glimpses``); the reference implementation's underscore spellings
(``--n_glimpses``) keep working as hidden aliases. Every expected failure is one line,
``<prog>: error: <what was wrong and what to do>``, and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys

import torch


class UsageError(Exception):
    """A bad flag, file or folder: the command line prints the message as one line and exits with status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and whose help hides the underscore aliases."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=AliasHidingFormatter, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        message = re.sub(r"(--[\w-]+)/--\w+", r"\1", message)  # "argument --n-glimpses/--n_glimpses: ..."
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class AliasHidingFormatter(argparse.HelpFormatter):
    """Help that shows ``--n-glimpses N``, not also its alias ``--n_glimpses``."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = [s for s in action.option_strings if "_" not in s] or action.option_strings
        if not shown or action.nargs == 0:
            return ", ".join(shown) or super()._format_action_invocation(action)
        return f"{', '.join(shown)} {self._format_args(action, self._get_default_metavar_for_optional(action))}"


def flag(group, name: str, help: str, **kwargs) -> argparse.Action:
    """Add ``--name-with-hyphens`` (and ``--name_with_underscores`` as a hidden alias) storing into ``name``."""
    spelling = "--" + name.replace("_", "-")
    aliases = [f"--{name}"] if "_" in name else []
    if "choices" not in kwargs and kwargs.get("action") is None:
        kwargs.setdefault("metavar", METAVARS.get(kwargs.get("type"), "PATH" if "dir" in name else None))
    return group.add_argument(spelling, *aliases, dest=name, help=help, **kwargs)


def integer_from(low: int, what: str):
    """An argparse type: an integer >= ``low``, refused in one line naming ``what`` it must be."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


positive_int = integer_from(1, "a positive integer")
natural_int = integer_from(0, "an integer >= 0")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def check_device(name: str, flag: str = "--device", also: tuple[str, ...] = ("auto",)) -> None:
    """Raise :class:`UsageError` unless ``flag name`` is one of ``also`` (``auto``) or a device this machine has."""
    if name in also:
        return
    choices = ", ".join((*also, "cpu", "cuda", "cuda:N"))
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"{flag} {name} is not a device; use {choices}") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise UsageError(f"{flag} {name}: only {choices} are supported")
    if not torch.cuda.is_available():
        raise UsageError(f"{flag} {name}: this machine has no CUDA GPU that torch can use; use {flag} cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(
            f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )


def fail(prog: str, message: object) -> int:
    """Print one error line for ``prog``; the exit status of an expected failure."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


METAVARS = {positive_int: "N", natural_int: "N", positive_float: "X"}
