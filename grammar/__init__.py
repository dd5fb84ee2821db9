"""motifgram.grammar: the motif grammar (DSL, induction, parsing, comparison)."""
