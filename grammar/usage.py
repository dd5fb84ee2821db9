"""Rule usage of a grammar: content keys of its rules, and divergences between two grammars' usage.

Every symbol gets a canonical key from its right-hand side (:func:`rule_keys`: ``ring(A A B)``, ``ring6(*)``, a
motif's canonical labelled graph over its parts' keys, ``domain(...)``), so rules with equal content match
whatever their names. Usage counts per level come from a run's own parses (``summary.json``: ``token_counts``
for level 0, ``motif_counts`` above) or else from the rule counts. They are compared per *tier*: tokens (level
0), rings (level 1) and motifs with domains (levels >= 2 pooled: a motif's level depends on the order in which
MDL merged its parts, so the same defect can sit at level 2 in one grammar and level 4 in another), by the
Jensen-Shannon divergence (base 2, in [0, 1]); a tier present in only one grammar contributes 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from motifgram.grammar.disorder import disorder_index
from motifgram.grammar.model import Grammar
from motifgram.grammar.rules import canonical_motif

__all__ = ["TIERS", "rule_keys", "jensen_shannon", "usage_divergence", "rule_differences",
           "grammar_disorder_estimate"]

TIERS = ("tokens", "rings", "motifs")
"""The usage tiers: level 0, level 1, levels >= 2."""


def rule_keys(grammar: Grammar) -> dict[str, str]:
    """A content key for every symbol, equal for rules with the same right-hand side whatever their names.

    Returns
    -------
    dict of str to str
        Token -> its name; ring -> ``ring(<canonical word>)`` or ``ring<n>(*)``; motif -> ``{<part keys>;
        <edges>}`` of its canonical labelled graph over its parts' keys; domain -> ``domain(<key>)``.
    """
    keys = {t.name: t.name for t in grammar.tokens}
    for r in grammar.rings:
        keys[r.name] = f"ring{r.size}(*)" if r.is_wildcard else f"ring({' '.join(r.word)})"
    for m in grammar.motifs:
        nodes, edges = canonical_motif([keys[p] for p in m.nodes], m.edges)
        keys[m.name] = "{" + ", ".join(nodes) + "; " + " ".join(f"{i}-{j}" for i, j in edges) + "}"
    for d in grammar.domains:
        keys[d.name] = f"domain({keys[d.symbol]})"
    return keys


def _key_of(symbol: str, keys: Mapping[str, str]) -> str:
    if symbol in keys:
        return keys[symbol]
    if symbol.startswith("R") and symbol.endswith("?") and symbol[1:-1].isdigit():  # unknown ring (parse.py)
        return f"ring{symbol[1:-1]}(?)"
    return f"?{symbol}"


def _tier(level: int) -> str:
    return TIERS[min(level, 2)]


def _tier_usage(usage: Mapping[int, Mapping[str, float]], keys: Mapping[str, str]) -> dict[str, Counter]:
    """Tier -> canonical key -> count."""
    out: dict[str, Counter] = {}
    for level, per in usage.items():
        counter = out.setdefault(_tier(int(level)), Counter())
        for symbol, count in per.items():
            if count > 0:
                counter[_key_of(symbol, keys)] += float(count)
    return {tier: c for tier, c in out.items() if sum(c.values()) > 0}


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two distributions given as (unnormalised) counts.

    Examples
    --------
    >>> jensen_shannon({"a": 1}, {"b": 3})
    1.0
    >>> jensen_shannon({"a": 1, "b": 1}, {"a": 2, "b": 2})
    0.0
    """
    support = sorted(set(p) | set(q))
    a = np.array([p.get(s, 0.0) for s in support], dtype=np.float64)
    b = np.array([q.get(s, 0.0) for s in support], dtype=np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        raise ValueError("jensen_shannon needs two non-empty distributions")
    a, b = a / a.sum(), b / b.sum()
    m = 0.5 * (a + b)

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return float(min(max(0.5 * kl(a) + 0.5 * kl(b), 0.0), 1.0))


def usage_divergence(usage_a: Mapping[int, Mapping[str, float]], keys_a: Mapping[str, str],
                     usage_b: Mapping[int, Mapping[str, float]], keys_b: Mapping[str, str]) -> dict[str, float]:
    """Jensen–Shannon divergence of rule usage per tier (``tokens``, ``rings``, ``motifs``).

    Symbols are compared by their keys (:func:`rule_keys`), so both key maps must be in one vocabulary.
    A tier present in only one usage gets 1; tiers present in neither are left out.
    """
    ta, tb = _tier_usage(usage_a, keys_a), _tier_usage(usage_b, keys_b)
    return {tier: (jensen_shannon(ta[tier], tb[tier]) if tier in ta and tier in tb else 1.0)
            for tier in TIERS if tier in ta or tier in tb}


def rule_differences(usage_a, keys_a, usage_b, keys_b) -> tuple[list[dict], list[dict]]:
    """Rules (levels ≥ 1) used by one item and absent from the other, heaviest first.

    Returns
    -------
    only_in_a, only_in_b : list of dict
        ``{"symbol", "rule" (its key), "level", "weight" (share of its tier's usage)}``.
    """
    def entries(usage, keys):
        tiers = _tier_usage(usage, keys)
        out = {}
        for level, per in usage.items():
            if int(level) < 1:
                continue
            total = sum(tiers.get(_tier(int(level)), {}).values())
            for symbol, count in per.items():
                key = _key_of(symbol, keys)
                if count > 0 and total > 0 and key not in out:
                    out[key] = {"symbol": symbol, "rule": key, "level": int(level),
                                "weight": float(tiers[_tier(int(level))][key] / total)}
        return out

    def order(e):
        return -e["weight"], e["rule"]

    ea, eb = entries(usage_a, keys_a), entries(usage_b, keys_b)
    return (sorted((e for k, e in ea.items() if k not in eb), key=order),
            sorted((e for k, e in eb.items() if k not in ea), key=order))


def grammar_disorder_estimate(grammar: Grammar) -> float:
    """Disorder index estimated from a grammar alone (no micrographs).

    ``½(1 − c) + ½ H / (1 + H)`` as in :mod:`motifgram.grammar.disorder`, with ``H`` the entropy (bits) of
    the ring rules' counts (wildcard rings count as one word each, so ``H`` is a lower bound) and ``c`` the
    share of rings that lie inside domains (``Σ DomainRule.size`` over ring domains / ``Σ RingRule.count``).
    0 for a grammar without rings.
    """
    counts = np.array([r.count for r in grammar.rings if r.count > 0], dtype=np.float64)
    if counts.sum() <= 0:
        return 0.0
    p = counts / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    ring_names = {r.name for r in grammar.rings}
    coverage = min(sum(d.size for d in grammar.domains if d.symbol in ring_names) / counts.sum(), 1.0)
    return disorder_index(entropy, coverage)
