"""Exact verification on plain numpy weights (no torch): networks, bounds, MILP and branch and bound."""
