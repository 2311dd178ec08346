"""VNN-LIB reader: one or more cases, each an input box and a disjunction of linear output conditions (`Property`).

Supported (the VNN-COMP subset): `(declare-const X_i Real)` / `(declare-const Y_j Real)`; `(assert F)` where F
is a comparison (`<=`, `>=`, `<`, `>`, `=`; strict read as non-strict, chains allowed) of linear expressions
(numbers, variables, `+`, `-`, `*` by constants, `/` by a constant) or an `and` / `or` of such formulas. Top-level
assertions are conjoined. Constraints over one input are bounds; constraints over outputs form the terms. Input
bounds may sit inside a disjunction (VNN-COMP's `(or (and X-box Y-condition) ...)`, or a union of boxes as in ACAS
Xu's property 6): the formula is expanded to disjunctive normal form and its conjunctions grouped by input box, one
`Property` per box (a box that is empty is dropped: it holds no input). The file is violated when any case is. In
every case each input needs a lower and an upper bound. Constraints mixing inputs and outputs or over several inputs
raise SpecError. Everything malformed raises SpecError with the line number.

The file is read as a stream, each top-level form reduced as soon as it closes and repeated constraints kept once,
so memory stays small however long the file; with a deadline, reading stops at it (ParseTimeout).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advgap.errors import SpecError
from advgap.verify.spec import Property, Term

MAX_DEPTH = 64
MAX_TERMS = 10_000
_TOKENS_PER_CLOCK_CHECK = 4096
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_VARIABLE = re.compile(r"([XY])_(0|[1-9]\d*)", re.ASCII)
_IGNORED_COMMANDS = frozenset({"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"})
_COMPARISONS = frozenset({"<=", ">=", "<", ">", "="})

_Var = tuple[str, int]  # ("X", i) or ("Y", j)


@dataclass(slots=True)
class _Atom:
    text: str
    line: int


@dataclass(slots=True)
class _List:
    items: list[_Atom | _List]
    line: int


_Node = _Atom | _List


@dataclass(slots=True)
class _Row:
    """`sum coefs[v] * v + const <= 0`, from the comparison `name` at `line`."""

    coefs: dict[_Var, float]
    const: float
    line: int
    name: str


_Conj = list[_Row]


class ParseTimeout(Exception):
    """The deadline passed before the file was read."""


class _Error(Exception):
    """A defect at `line`; turned into SpecError naming the source."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def read_vnnlib(path: str | Path, deadline: float | None = None) -> tuple[Property, ...]:
    """Parse the VNN-LIB file at `path` into its cases (module docstring); SpecError naming the file (and line) on
    any defect, ParseTimeout once `deadline` (time.monotonic()) has passed."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as lines:
            return _parse(lines, str(path), deadline)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read VNN-LIB file ({exc})") from exc


def parse_vnnlib(text: str, source: str = "<vnnlib>", deadline: float | None = None) -> tuple[Property, ...]:
    """Parse VNN-LIB text into its cases (see the module docstring for the supported subset)."""
    return _parse(text.splitlines(), source, deadline)


def _parse(lines: Iterable[str], source: str, deadline: float | None) -> tuple[Property, ...]:
    try:
        return _build(_read_forms(lines, deadline), source)
    except _Error as exc:
        raise SpecError(f"{source}, line {exc.line}: {exc}") from None


def _read_forms(lines: Iterable[str], deadline: float | None) -> Iterator[_Node]:
    """The top-level s-expressions of `lines`, each as it closes (comments from ';' to the end of a line are
    skipped); ParseTimeout once `deadline` has passed."""
    stack: list[_List] = []
    tokens = 0
    lineno = 0
    for lineno, line in enumerate(lines, start=1):
        cut = line.find(";")
        for match in _TOKEN.finditer(line if cut < 0 else line[:cut]):
            tokens += 1
            if deadline is not None and tokens % _TOKENS_PER_CLOCK_CHECK == 0 and time.monotonic() > deadline:
                raise ParseTimeout(f"time limit reached at line {lineno}")
            token = match.group()
            if token == "(":
                if len(stack) >= MAX_DEPTH:
                    raise _Error(lineno, f"expressions nested deeper than {MAX_DEPTH} levels")
                stack.append(_List([], lineno))
            elif token == ")":
                if not stack:
                    raise _Error(lineno, "unexpected ')'")
                done = stack.pop()
                if stack:
                    stack[-1].items.append(done)
                else:
                    yield done
            elif stack:
                stack[-1].items.append(_Atom(token, lineno))
            else:
                yield _Atom(token, lineno)
    if stack:
        raise _Error(stack[-1].line, "'(' is never closed")


def _build(forms: Iterable[_Node], source: str) -> tuple[Property, ...]:
    variables: dict[str, _Var] = {}
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    common: dict[tuple, _Row] = {}
    disjunctions: dict[tuple, list[_Conj]] = {}
    last_assert = 0
    for form in forms:
        if not isinstance(form, _List) or not form.items or not isinstance(form.items[0], _Atom):
            raise _Error(form.line, "expected a command such as (declare-const ...) or (assert ...)")
        command = form.items[0].text
        if command == "declare-const":
            _declare(form, variables)
        elif command == "assert":
            if len(form.items) != 2:
                raise _Error(form.line, "assert takes exactly one formula")
            last_assert = form.line
            dnf = _formula(form.items[1], variables)
            if len(dnf) == 1:
                for row in dnf[0]:
                    if _is_input_row(row):
                        _apply_bound(row, lo, hi)
                    else:
                        common.setdefault(_key(row), row)
                continue
            for row in (row for conj in dnf for row in conj):
                _is_input_row(row)  # refuses rows mixing inputs and outputs, or over several inputs
            disjunctions.setdefault(tuple(tuple(map(_key, conj)) for conj in dnf), dnf)
        elif command not in _IGNORED_COMMANDS:
            raise _Error(form.line, f"unsupported command {command!r}")
    n_x = _count_declared(variables, "X", source)
    n_y = _count_declared(variables, "Y", source)
    combos = _product([[list(common.values())], *disjunctions.values()], last_assert)
    cases: dict[tuple, tuple[dict[int, float], dict[int, float], list[Term]]] = {}
    shared_key = (tuple(sorted(lo.items())), tuple(sorted(hi.items())))
    for combo in combos:
        rows = [row for conj in combo for row in conj]
        outputs = [row for row in rows if not _is_input_row(row)]
        if not outputs:
            raise SpecError(f"{source}: no constraint on the outputs" if len(combos) == 1 else
                            f"{source}, line {rows[0].line if rows else last_assert}: a case constrains no output")
        box_lo, box_hi, key = lo, hi, shared_key
        if len(outputs) < len(rows):
            box_lo, box_hi = dict(lo), dict(hi)
            for row in rows:
                if _is_input_row(row):
                    _apply_bound(row, box_lo, box_hi)
            key = (tuple(sorted(box_lo.items())), tuple(sorted(box_hi.items())))
        cases.setdefault(key, (box_lo, box_hi, []))[2].append(_term(outputs, n_y))
    return _cases(cases.values(), n_x, source)


def _cases(boxes: Iterable[tuple[dict[int, float], dict[int, float], list[Term]]], n_x: int,
           source: str) -> tuple[Property, ...]:
    """One Property per input box with its terms; empty boxes dropped unless every box is empty."""
    found, first_error = [], None
    for box_lo, box_hi, terms in boxes:
        missing = [i for i in range(n_x) if i not in box_lo or i not in box_hi]
        if missing:
            raise SpecError(f"{source}: input X_{missing[0]} has no finite lower and upper bound")
        try:
            found.append(Property(np.array([box_lo[i] for i in range(n_x)]), np.array([box_hi[i] for i in range(n_x)]),
                                  tuple(terms)))
        except SpecError as exc:
            if "empty input box" not in str(exc):
                raise SpecError(f"{source}: {exc}") from None
            first_error = first_error or exc
    if not found:
        raise SpecError(f"{source}: {first_error}")
    return tuple(found)


def _declare(form: _List, variables: dict[str, _Var]) -> None:
    items = form.items
    if len(items) != 3 or not all(isinstance(i, _Atom) for i in items[1:]):
        raise _Error(form.line, "expected (declare-const NAME Real)")
    name, sort = items[1].text, items[2].text
    if sort != "Real":
        raise _Error(form.line, f"{name} has sort {sort!r}; only Real is supported")
    match = _VARIABLE.fullmatch(name)
    if not match:
        raise _Error(form.line, f"variable {name!r} must be named X_i (input) or Y_j (output)")
    if name in variables:
        raise _Error(form.line, f"{name} is declared twice")
    variables[name] = (match.group(1), int(match.group(2)))


def _count_declared(variables: dict[str, _Var], kind: str, source: str) -> int:
    indices = sorted(i for k, i in variables.values() if k == kind)
    if not indices:
        raise SpecError(f"{source}: no {kind}_i variable is declared")
    if indices[-1] != len(indices) - 1:
        gap = next(i for i, j in enumerate(indices) if i != j)
        raise SpecError(f"{source}: {kind}_{gap} is not declared but {kind}_{indices[-1]} is")
    return len(indices)


def _formula(node: _Node, variables: dict[str, _Var]) -> list[_Conj]:
    """Disjunctive normal form of a formula: a list of conjunctions of rows."""
    if not isinstance(node, _List) or not node.items or not isinstance(node.items[0], _Atom):
        raise _Error(node.line, "expected a formula such as (<= a b), (and ...) or (or ...)")
    op, args = node.items[0].text, node.items[1:]
    if op in ("or", "and") and not args:
        raise _Error(node.line, f"empty ({op})")
    if op == "or":
        result = [conj for arg in args for conj in _formula(arg, variables)]
        if len(result) > MAX_TERMS:
            raise _Error(node.line, f"more than {MAX_TERMS} disjuncts")
        return result
    if op == "and":
        combos = _product([_formula(arg, variables) for arg in args], node.line)
        return [[row for conj in combo for row in conj] for combo in combos]
    if op in _COMPARISONS:
        if len(args) < 2:
            raise _Error(node.line, f"({op} ...) needs at least two arguments")
        exprs = [_linear(arg, variables) for arg in args]
        name = _render(node)
        rows = []
        for (ca, ka), (cb, kb) in itertools.pairwise(exprs):
            if op in ("<=", "<", "="):
                rows.append(_row(ca, ka, cb, kb, node.line, name))
            if op in (">=", ">", "="):
                rows.append(_row(cb, kb, ca, ka, node.line, name))
        return [rows]
    raise _Error(node.line, f"unsupported operator {op!r} in a formula")


def _product(parts: list[list[_Conj]], line: int) -> list[tuple[_Conj, ...]]:
    total = 1
    for part in parts:
        total *= len(part)
        if total > MAX_TERMS:
            raise _Error(line, f"the conjunction of disjunctions has more than {MAX_TERMS} terms")
    return list(itertools.product(*parts))


def _row(ca: dict[_Var, float], ka: float, cb: dict[_Var, float], kb: float, line: int, name: str) -> _Row:
    """The row `a - b <= 0`."""
    coefs = dict(ca)
    for v, c in cb.items():
        coefs[v] = coefs.get(v, 0.0) - c
    return _Row({v: c for v, c in coefs.items() if c != 0.0}, ka - kb, line, name)


def _linear(node: _Node, variables: dict[str, _Var]) -> tuple[dict[_Var, float], float]:
    """A linear expression as (coefficients, constant)."""
    if isinstance(node, _Atom):
        if _NUMBER.fullmatch(node.text):
            return {}, float(node.text)
        if node.text in variables:
            return {variables[node.text]: 1.0}, 0.0
        raise _Error(node.line, f"{node.text!r} is neither a number nor a declared variable")
    if not node.items or not isinstance(node.items[0], _Atom):
        raise _Error(node.line, "expected an arithmetic expression")
    op = node.items[0].text
    args = [_linear(arg, variables) for arg in node.items[1:]]
    if not args:
        raise _Error(node.line, f"({op}) needs arguments")
    if op == "+" or (op == "-" and len(args) > 1):
        coefs, const = dict(args[0][0]), args[0][1]
        sign = 1.0 if op == "+" else -1.0
        for c, k in args[1:]:
            for v, a in c.items():
                coefs[v] = coefs.get(v, 0.0) + sign * a
            const += sign * k
        return coefs, const
    if op == "-":
        return _scale(args[0], -1.0)
    if op == "*":
        factor, expr = 1.0, ({}, 1.0)
        for c, k in args:
            if c and expr[0]:
                raise _Error(node.line, "product of two variables is not linear")
            if c:
                expr = (c, k * expr[1])
            else:
                factor *= k
        return _scale(expr, factor)
    if op == "/":
        if len(args) != 2 or args[1][0]:
            raise _Error(node.line, "(/ e c) needs a constant divisor")
        if args[1][1] == 0.0:
            raise _Error(node.line, "division by zero")
        return _scale(args[0], 1.0 / args[1][1])
    raise _Error(node.line, f"unsupported operator {op!r} in an expression")


def _scale(expr: tuple[dict[_Var, float], float], factor: float) -> tuple[dict[_Var, float], float]:
    return {v: factor * c for v, c in expr[0].items()}, factor * expr[1]


def _is_input_row(row: _Row) -> bool:
    kinds = {kind for kind, _ in row.coefs}
    if kinds == {"X", "Y"}:
        raise _Error(row.line, "constraints mixing inputs and outputs are not supported")
    if kinds == {"X"} and len(row.coefs) > 1:
        raise _Error(row.line, "constraints over several inputs are not supported (only bounds)")
    return kinds == {"X"}


def _apply_bound(row: _Row, lo: dict[int, float], hi: dict[int, float]) -> None:
    (((_, i), c),) = row.coefs.items()
    bound = -row.const / c
    if not np.isfinite(bound):
        raise _Error(row.line, f"bound on X_{i} is not finite")
    if c > 0:
        hi[i] = min(hi.get(i, np.inf), bound)
    else:
        lo[i] = max(lo.get(i, -np.inf), bound)


def _key(row: _Row) -> tuple:
    """What makes two rows the same constraint."""
    return tuple(sorted(row.coefs.items())), row.const


def _term(rows: list[_Row], n_y: int) -> Term:
    A = np.zeros((len(rows), n_y))
    b = np.empty(len(rows))
    for r, row in enumerate(rows):
        for (_, j), c in row.coefs.items():
            A[r, j] = c
        b[r] = -row.const
        if not (np.isfinite(A[r]).all() and np.isfinite(b[r])):
            raise _Error(row.line, "constraint has a NaN or infinite coefficient")
    name = " and ".join(dict.fromkeys(row.name for row in rows))
    return Term(A, b, name if len(name) <= 80 else name[:79] + "…")


def _render(node: _Node) -> str:
    if isinstance(node, _Atom):
        return node.text
    return "(" + " ".join(_render(item) for item in node.items) + ")"


def format_assignment(x: np.ndarray, y: np.ndarray) -> str:
    """A counterexample in VNN-COMP's format `((X_0 v) ... (Y_0 v) ...)`, values exact (shortest repr)."""
    pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)] + [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
    return "(" + "\n ".join(pairs) + ")\n"
