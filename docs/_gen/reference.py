"""MkDocs hook: the reference pages generated from the code, so that they cannot drift from it.

- ``spec.md``: every spec key from the JSON Schema (``motifgram schema``) and the simulator's options;
- ``grammar-dsl.md``: the grammar text format, from ``grammar/motifgram.lark`` and the error table of
  :mod:`motifgram.grammar.dsl`;
- ``cli.md``: every command's ``--help``;
- ``tutorial.md``: the tutorial notebook (``docs/tutorial.ipynb``) as a page, code and text cells in order.

It also lays out the package for the API reference: the repository maps its folders onto ``motifgram.*``
(pyproject's ``package-dir``), which mkdocstrings cannot follow in an editable install, so the hook links
them into ``build/api-docs/motifgram/`` (the ``paths`` of the Python handler in ``mkdocs.yml``).

Listed under ``hooks:`` in ``mkdocs.yml``; excluded from the site itself (``exclude_docs``).
"""

import html
import json
import os
import shutil
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

import motifgram
from motifgram.engine.cli import build_parser
from motifgram.engine.simspec import KINDS, simulate_options
from motifgram.engine.spec import json_schema
from motifgram.grammar import dsl

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
PACKAGE_TREE = ROOT / "build" / "api-docs"


@event_priority(100)  # before mkdocstrings looks for the package
def on_config(config):
    link_package(PACKAGE_TREE)
    return config


def link_package(tree: Path) -> None:
    """``tree/motifgram/...``: links to the repository's folders as pyproject maps them onto the package."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(tree, ignore_errors=True)
    top = tree / "motifgram"
    top.mkdir(parents=True)
    for entry in (ROOT / mapping["motifgram"]).iterdir():  # the top-level package's own files
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        if package != "motifgram":
            (tree / package.replace(".", "/")).symlink_to(ROOT / folder, target_is_directory=True)


def on_files(files, config):
    for name, make in (("spec.md", spec_page), ("grammar-dsl.md", grammar_page), ("cli.md", cli_page),
                       ("tutorial.md", tutorial_page)):
        files.append(File.generated(config, name, content=make()))
    return files


# -- the spec ------------------------------------------------------------------------------------------------

def _kind(prop: dict, defs: dict) -> str:
    """A property's type in words: ``integer >= 1 or "auto"``."""
    if "anyOf" in prop:
        return " or ".join(_kind(p, defs) for p in prop["anyOf"])
    if "const" in prop:
        return f'"{prop["const"]}"'
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{_anchor(prop['$ref'].rsplit('/', 1)[-1])})"
    if "enum" in prop:
        return "one of " + ", ".join(f'"{v}"' for v in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(_kind(p, defs) for p in prop["prefixItems"]) + "]"
        return "list of " + _kind(prop.get("items", {}), defs)
    if kind == "object":
        return "mapping of name to " + _kind(prop.get("additionalProperties", {}), defs)
    words = " or ".join(kind) if isinstance(kind, list) else str(kind)
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<=")):
        if key in prop:
            words += f" {sign} {prop[key]}"
    if "not" in prop and prop["not"] == {"multipleOf": 2}:
        words = "odd " + words
    return words


def _anchor(title: str) -> str:
    return title.lower()


def _cell(text) -> str:
    """Prose for a table cell: '<name>' kept as text, not taken for an HTML tag; no line breaks."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _code_cell(text) -> str:
    """Code for a table cell (in backticks, where markdown shows every character as it is)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def spec_page() -> str:
    schema = json_schema()
    defs = schema["$defs"]
    lines = [
        "# Spec reference",
        "",
        "A run is described by a YAML spec (`motifgram run SPEC.yaml`). Only `inputs` is required; every other "
        "key has the default shown. `auto` lets the stage choose (the chosen value is logged and recorded in "
        "`summary.json`). `motifgram validate SPEC.yaml` checks a spec and lists every problem with its YAML path; "
        "`motifgram schema` prints the JSON Schema this page is generated from (point an editor at it for "
        "completion). Paths are relative to the spec file's folder.",
        "",
    ]
    for title, section in [("Spec", schema), *defs.items()]:
        lines += [f"## {title}", "", _cell(section.get("description") or ""), "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        for key, prop in section["properties"].items():
            default = f"`{json.dumps(prop['default'])}`" if "default" in prop else "required"
            if "$ref" in prop and "default" in prop:
                default = "see the section"
            lines.append(f"| `{key}` | {_kind(prop, defs)} | {_code_cell(default)} | {_cell(prop.get('description', ''))} |")
        lines.append("")
    lines += ["## Simulator options", "",
              "Every key of `inputs[].simulate` besides `kind`, `size` and `seed` is an option of the simulator "
              "for that kind (`auto`: the simulator's choice, e.g. a random lattice rotation drawn from the seed). "
              "`motifgram simulate KIND --option-name VALUE` takes the same options.", "",
              "| kind | options (default) |", "|---|---|"]
    for kind in KINDS:
        options = ", ".join(f"`{name}` ({'auto' if value is None else f'{value:.4g}'})"
                            for name, value in simulate_options(kind).items())
        lines.append(f"| `{kind}` | {options} |")
    return "\n".join(lines) + "\n"


# -- the grammar DSL -------------------------------------------------------------------------------------------

def grammar_page() -> str:
    lark_text = (Path(dsl.__file__).parent / "motifgram.lark").read_text()
    intro = dsl.__doc__.split("\n", 1)[1].strip()
    lines = [
        "# Grammar text format",
        "",
        "A learned grammar is written as text (`grammar.txt` of a run); `motifgram show` prints it and "
        "`Grammar.parse_text` reads it back (`parse_text(g.to_text()) == g`).",
        "",
        "```text",
        *_indented_block(intro),
        "```",
        "",
        _prose_after_block(intro),
        "",
        "## Syntax (lark)",
        "",
        "The parser is generated from this grammar, shipped in the package as `motifgram/grammar/motifgram.lark`:",
        "",
        "```text",
        lark_text.rstrip(),
        "```",
        "",
        "## Common mistakes",
        "",
        "A grammar that does not parse is reported with its line, column and a caret, and, when the mistake is "
        "a known one, one of these explanations:",
        "",
        "| explanation | an example that gets it |",
        "|---|---|",
    ]
    for explanation, examples in dsl.GRAMMAR_ERRORS:
        example = examples[0].replace("\n", " ")
        lines.append(f"| {_cell(explanation)} | `{_code_cell(example)}` |")
    return "\n".join(lines) + "\n"


def _indented_block(doc: str) -> list[str]:
    """The indented example of a docstring (after its ``::``), dedented."""
    block = doc.split("::", 1)[1].split("\n\n")
    body, started = [], False
    for paragraph in block:
        if paragraph.startswith("    ") or (not started and not paragraph.strip()):
            body.append(paragraph)
            started = True
        elif started:
            break
    return [line[4:] for line in "\n\n".join(body).strip("\n").splitlines()]


def _prose_after_block(doc: str) -> str:
    after = doc.split("::", 1)[1]
    paragraphs = [p for p in after.split("\n\n") if p.strip() and not p.startswith("    ")]
    text = " ".join(" ".join(p.split()) for p in paragraphs)
    return text.replace(":func:", "").replace(":class:", "")


# -- the command line ------------------------------------------------------------------------------------------

def cli_page() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps its help to the terminal
    parser = build_parser()
    lines = ["# Command line", "", f"`motifgram --version` prints `motifgram {motifgram.__version__}`.", "",
             "Exit codes: 0 success; 2 bad input (spec, file, arguments, grammar) with a message naming the problem "
             "and the fix; 1 an internal error (a bug: please report it with the traceback); 130 interrupted "
             "(Ctrl-C), 143 terminated (SIGTERM), in both cases with nothing written; 141 when the reader of "
             "the output went away (`motifgram schema | head`).", "",
             "```text", parser.format_help().rstrip(), "```", ""]
    commands = next(a for a in parser._actions if a.dest == "command")  # argparse keeps subparsers here
    for name, sub in commands.choices.items():
        lines += [f"## motifgram {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


# -- the tutorial ------------------------------------------------------------------------------------------------

def tutorial_page() -> str:
    path = DOCS / "tutorial.ipynb"
    notebook = json.loads(path.read_text())
    lines = ["[Download the notebook](tutorial.ipynb) and run it in Jupyter (`pip install \"motifgram[notebook]\"`).",
             ""]
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            lines += [source, ""]
        elif cell["cell_type"] == "code" and source.strip():
            lines += ["```python", source.rstrip(), "```", ""]
    return "\n".join(lines)
