"""Errors raised by motifgram.

Every error a user can cause (a bad spec, an unreadable file, an image with no lattice, a malformed
grammar) is a :class:`MotifgramError`; the CLI turns those into exit code 2 with their message.
Anything else is a bug and exits with 1.
"""

__all__ = [
    "MotifgramError",
    "SpecError",
    "ImageError",
    "NoLatticeError",
    "GrammarError",
    "GrammarSyntaxError",
]


class MotifgramError(Exception):
    """Root of all errors caused by input (spec, files, arguments, grammars)."""


class SpecError(MotifgramError, ValueError):
    """A spec is invalid. ``problems`` lists ``(yaml_path, message)`` pairs."""

    def __init__(self, problems, *, source=None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"invalid spec{where}:"] + [f"  {path or '<root>'}: {msg}" for path, msg in self.problems]
        super().__init__("\n".join(lines))


class ImageError(MotifgramError, ValueError):
    """An image file cannot be read or holds no usable 2-D micrograph."""


class NoLatticeError(ImageError):
    """An image shows no periodic lattice of atom columns."""


class GrammarError(MotifgramError, ValueError):
    """A grammar is inconsistent or does not fit the micrograph it is applied to."""


class GrammarSyntaxError(GrammarError):
    """Grammar text that does not parse; carries the line, column and a caret context."""

    def __init__(self, message, *, line, column, context="", source=None):
        self.line = line
        self.column = column
        self.context = context
        self.source = source
        where = f"{source}:" if source else "line "
        text = f"{where}{line}:{column}: {message}"
        if context:
            text += "\n" + context
        super().__init__(text)
