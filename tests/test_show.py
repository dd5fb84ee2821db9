"""Tests for motifgram.engine.show: the outline of a parse tree that ``motifgram show --tree`` prints."""

import pytest

from motifgram.engine.show import outline_tree


def _ring(symbol, atoms, owned):
    return {"symbol": symbol, "level": 1, "atoms": atoms,
            "children": [{"symbol": "A", "level": 0, "atoms": [a], "children": []} for a in owned]}

# micrograph -> a domain of three hexagons, a motif of a 5- and a 7-ring, two atoms in no ring
_TREE = {"symbol": "micrograph", "level": 3, "atoms": list(range(24)), "children": [
    {"symbol": "D6", "level": 2, "atoms": list(range(14)), "children": [
        _ring("R6", [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]), _ring("R6", [4, 5, 6, 7, 8, 9], [6, 7, 8, 9]),
        _ring("R6", [8, 9, 10, 11, 12, 13], [10, 11, 12, 13])]},
    {"symbol": "M1", "level": 2, "atoms": list(range(14, 22)), "children": [
        _ring("R5", [14, 15, 16, 17, 18], [14, 15, 16, 17, 18]), _ring("R7", [14, 18, 19, 20, 21, 16, 17],
                                                                       [19, 20, 21])]},
    {"symbol": "A", "level": 0, "atoms": [22], "children": []},
    {"symbol": "A", "level": 0, "atoms": [23], "children": []},
]}


def _count(node):
    return 1 + sum(_count(c) for c in node["children"])


@pytest.mark.parametrize("depth", [1, 2])
def test_outline_stops_at_the_depth_and_counts_what_it_left_out(depth):
    lines = outline_tree(_TREE, depth=depth).splitlines()
    assert lines[0] == "micrograph  (4 parts, 24 atoms)"
    assert max(len(line) - len(line.lstrip()) for line in lines) // 2 == depth
    shown = {1: 1 + 4, 2: 1 + 4 + 5}[depth]  # nodes down to that level (all of them, grouped or not)
    assert lines[-1].startswith(f"# {_count(_TREE) - shown} nodes more than {depth} level")
    assert "  A x2: 22 23" in lines
    if depth == 1:
        assert "  D6  (3 parts, 14 atoms)" in lines and "  M1  (2 parts, 8 atoms)" in lines
    else:
        assert "    R6 x3  (14 parts, 14 atoms)" in lines  # one line for the domain's three rings
        assert "    R5  (5 parts, 5 atoms)" in lines and "    R7  (3 parts, 7 atoms)" in lines


def test_outline_of_the_whole_tree_lists_every_atom_once():
    text = outline_tree(_TREE, depth=0)
    assert "not shown" not in text
    ids = [int(a) for line in text.splitlines() if ": " in line for a in line.split(": ")[1].split()]
    assert sorted(ids) == list(range(24))
