"""The documentation site builds without a warning, and its generated reference pages follow the code."""

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
    pytest.importorskip(module, reason="the docs extra is not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    assert "WARNING" not in build.stderr, build.stderr
    return out


def text_of(site, page):
    """A page's text, tags removed, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", (site / page / "index.html").read_text())).split())


def words(text):
    return " ".join(text.split())


def test_the_spec_page_lists_every_key_of_the_schema(site):
    from motifgram.engine.simspec import KINDS, simulate_options
    from motifgram.engine.spec import json_schema

    page = text_of(site, "spec")
    schema = json_schema()
    for section in [schema, *schema["$defs"].values()]:
        for key, prop in section["properties"].items():
            assert re.search(rf"\b{re.escape(key)}\b", page), key
            if isinstance(prop.get("default"), int | float) and not isinstance(prop["default"], bool):
                assert json.dumps(prop["default"]) in page
    for kind in KINDS:
        assert all(option in page for option in simulate_options(kind))


def test_the_cli_page_documents_every_command(site):
    from motifgram.engine.cli import build_parser

    page = text_of(site, "cli")
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"motifgram {name}" in page
        for action in sub._actions:
            assert all(flag in page for flag in action.option_strings), (name, action.option_strings)


def test_the_grammar_page_shows_the_lark_grammar_and_every_common_mistake(site):
    from motifgram.grammar.dsl import GRAMMAR_ERRORS

    page = text_of(site, "grammar-dsl")
    for rule in ("tokens_section", "ring_rule", "motif_rule", "domain_rule", "WILD_RING"):
        assert rule in page
    for explanation, examples in GRAMMAR_ERRORS:
        assert words(explanation) in page and words(examples[0]) in page


def test_the_api_reference_comes_from_the_docstrings(site):
    from motifgram.engine.pipeline import run
    from motifgram.grammar import Grammar

    runs, grammars = text_of(site, "api/runs"), text_of(site, "api/grammar")
    assert words(run.__doc__.split("\n")[0]) in runs
    assert "description_length_bits" in grammars and words(Grammar.__doc__.split("\n")[0]) in grammars
