"""``motifgram show``: a run's (or a grammar file's) grammar as text, with a short summary and a parse tree."""

import json
from collections import Counter

from motifgram.engine import rundir
from motifgram.engine.errors import MotifgramError
from motifgram.grammar.parse import ParseNode

__all__ = ["show_grammar"]


def show_grammar(path, *, tree_of: str | None = None) -> str:
    """The grammar of a run directory (or a grammar file) as text, with a short summary.

    With ``tree_of`` (an image id of the run) the parse tree of that micrograph is appended.
    """
    grammar_path = rundir.grammar_file(path)
    grammar = rundir.read_grammar_file(grammar_path)
    lines = [grammar.to_text().rstrip(), ""]
    per_level = Counter(grammar.level_of(r.name) for r in (*grammar.rings, *grammar.motifs, *grammar.domains))
    lines.append(
        f"# {grammar.n_rules} rules ("
        + ", ".join(f"level {level}: {n}" for level, n in sorted(per_level.items()))
        + f"), {grammar.description_length_bits():.1f} bits"
    )
    summary = rundir.read_summary(grammar_path.parent, required=False)
    for image_id, info in summary.get("images", {}).items():
        lines.append(
            f"# {image_id}: {info['n_atoms']} atoms, {info['n_rings']} rings, "
            f"coverage {info['coverage']}, {info['bits_per_atom']:.3f} bits/atom, disorder {info['disorder']:.3f}"
        )
    if tree_of is not None:
        tree_path = rundir.parse_path(grammar_path.parent, tree_of)
        if not tree_path.is_file():
            raise MotifgramError(f"{tree_path}: no parse tree for image '{tree_of}' in this run")
        lines += ["", ParseNode.from_dict(json.loads(tree_path.read_text())).to_lark_tree().pretty()]
    return "\n".join(lines)
