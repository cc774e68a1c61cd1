"""Paired evaluation protocols: policies compared trial by trial on the same placements."""
