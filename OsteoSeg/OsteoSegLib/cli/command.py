"""How every `osteoseg` command is declared: a one-line summary, an optional paragraph, examples in
the epilog, and each option's default shown once (only where its help text does not state it)."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; appends "(default: X)" to an option's help unless the text
    already speaks of its default or there is none to show (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text or action.default in (None, False)
                or action.default is argparse.SUPPRESS):
            return text
        if isinstance(action.default, list | tuple):
            return f"{text} (default: {' '.join(map(str, action.default))})"
        return f"{text} (default: %(default)s)"


def add_command(commands, name: str, *, summary: str, examples: list[str], details: str = "",
                **options) -> argparse.ArgumentParser:
    """A sub-command whose --help starts with `summary` and ends with `examples`."""
    description = summary + ("\n\n" + textwrap.fill(details, 100) if details else "")
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples)
    return commands.add_parser(name, help=summary, description=description, epilog=epilog,
                               formatter_class=HelpFormatter, **options)
