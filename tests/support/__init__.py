"""Helpers shared by tests: reference solvers and tiny nets."""
