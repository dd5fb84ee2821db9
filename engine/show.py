"""``motifgram show``: a run's (or a grammar file's) grammar as text, with a short summary and a parse tree."""

import json
from collections import Counter

from motifgram.engine import rundir
from motifgram.engine.errors import MotifgramError

__all__ = ["show_grammar", "outline_tree", "TREE_DEPTH"]

#: Levels of a parse tree below the root that ``motifgram show --tree`` prints by default: the micrograph
#: and its motifs and domains, collapsed into counts per symbol; ``--depth`` shows their parts.
TREE_DEPTH = 1
#: Atom ids listed on one line of a collapsed group of atoms (all of them with ``depth=0``).
_IDS_SHOWN = 12


def show_grammar(path, *, tree_of: str | None = None, depth: int = TREE_DEPTH) -> str:
    """The grammar of a run directory (or a grammar file) as text, with a short summary.

    With ``tree_of`` (an image id of the run) the parse tree of that micrograph is appended as an outline
    down to ``depth`` levels below the root (0: the whole tree), see :func:`outline_tree`.
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
        lines += ["", outline_tree(json.loads(tree_path.read_text()), depth=depth)]
    return "\n".join(lines)


def outline_tree(tree, *, depth: int = TREE_DEPTH) -> str:
    """A parse tree (``parses/<image>.json``: nested ``{symbol, level, atoms, children}``) as an indented outline.

    Each node is one line: its symbol, and how many parts and atoms it holds. Nodes more than ``depth``
    levels below the root are not printed; consecutive siblings whose parts are not printed (atoms, and
    nodes at the depth limit) are collapsed into one line per symbol (``R6 x1150``, ``A x6: 83 96 ...``).
    A last line says how many nodes the limit left out.

    Parameters
    ----------
    tree : mapping
        The root node, as read from JSON.
    depth : int
        Levels below the root to print; 0 prints the whole tree (atoms as collapsed groups with every id).

    Returns
    -------
    str
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    lines: list[str] = []
    hidden = 0

    def size(node) -> int:
        return 1 + sum(size(child) for child in node["children"])

    def visit(node, level: int) -> None:
        nonlocal hidden
        lines.append("  " * level + _outline_line([node]))
        group: list = []
        for child in [*node["children"], None]:
            collapsed = child is not None and (not child["children"] or level + 1 == depth)
            if group and not (collapsed and child["symbol"] == group[0]["symbol"]):
                lines.append("  " * (level + 1) + _outline_line(group, all_ids=depth == 0))
                hidden += sum(size(member) - 1 for member in group)
                group = []
            if collapsed:
                group.append(child)
            elif child is not None:
                visit(child, level + 1)

    visit(tree, 0)
    if hidden:
        lines.append(f"# {hidden} nodes more than {depth} level{'s' if depth > 1 else ''} below the root not "
                     "shown; --depth N shows more, --depth 0 all")
    return "\n".join(lines)


def _outline_line(nodes, *, all_ids: bool = False) -> str:
    """One line for a node, or for consecutive siblings of one symbol whose parts are not shown."""
    symbol = nodes[0]["symbol"] + (f" x{len(nodes)}" if len(nodes) > 1 else "")
    if not nodes[0]["children"]:  # atoms: list their ids
        atoms = [a for node in nodes for a in node["atoms"]]
        shown = atoms if all_ids else atoms[:_IDS_SHOWN]
        more = f" ... (+{len(atoms) - len(shown)})" if len(shown) < len(atoms) else ""
        return f"{symbol}: {' '.join(map(str, shown))}{more}"
    parts = sum(len(node["children"]) for node in nodes)
    atoms = len({a for node in nodes for a in node["atoms"]})
    return f"{symbol}  ({parts} part{'s' if parts != 1 else ''}, {atoms} atoms)"
