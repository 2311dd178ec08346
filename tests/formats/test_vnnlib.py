import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advgap.errors import SpecError
from advgap.formats.vnnlib import format_assignment, parse_vnnlib, read_vnnlib

HEADER = """\
; two inputs, three outputs
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 -0.25))
(assert (and (<= X_1 1e-1) (>= X_1 0)))
"""


def parse(body: str):
    (prop,) = parse_vnnlib(HEADER + body)
    return prop


def test_input_bounds_and_single_output_assertion():
    prop = parse("(assert (<= Y_1 0.5))\n")
    np.testing.assert_array_equal(prop.lo, [-0.25, 0.0])
    np.testing.assert_array_equal(prop.hi, [0.5, 0.1])
    (term,) = prop.terms
    np.testing.assert_array_equal(term.A, [[0, 1, 0]])
    np.testing.assert_array_equal(term.b, [0.5])
    assert term.name == "(<= Y_1 0.5)"


def test_several_top_level_output_assertions_form_one_conjunction():
    prop = parse("(assert (>= Y_0 Y_1))\n(assert (< Y_2 3))\n")
    (term,) = prop.terms
    np.testing.assert_array_equal(term.A, [[-1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(term.b, [0, 3])


def test_disjunction_of_conjunctions_with_linear_arithmetic():
    prop = parse(
        """(assert (or
            (and (>= Y_0 Y_2) (<= (+ Y_1 (* 2 Y_2) 1) 4))
            (and (<= (- Y_0 (* Y_1 0.5)) (- 3)))
            (> (/ Y_2 4) (- Y_0))
        ))"""
    )
    assert len(prop.terms) == 3
    t0, t1, t2 = prop.terms
    np.testing.assert_array_equal(t0.A, [[-1, 0, 1], [0, 1, 2]])
    np.testing.assert_array_equal(t0.b, [0, 3])
    np.testing.assert_array_equal(t1.A, [[1, -0.5, 0]])
    np.testing.assert_array_equal(t1.b, [-3])
    np.testing.assert_array_equal(t2.A, [[-1, 0, -0.25]])
    np.testing.assert_array_equal(t2.b, [0])


def test_common_conjunction_is_added_to_every_disjunct():
    prop = parse("(assert (<= Y_2 7))\n(assert (or (>= Y_0 Y_1) (>= Y_1 Y_0)))\n")
    assert len(prop.terms) == 2
    for term in prop.terms:
        assert term.A.shape == (2, 3)
        np.testing.assert_array_equal(term.A[0], [0, 0, 1])


def test_equality_chains_and_ignored_commands():
    prop = parse("(set-logic QF_LRA)\n(assert (= Y_0 Y_1 2))\n(check-sat)\n")
    (term,) = prop.terms
    assert term.A.shape == (4, 3)
    assert term.holds(np.array([2.0, 2.0, 9.0])) and not term.holds(np.array([2.0, 2.5, 9.0]))


def test_bounds_combine_to_the_tightest():
    prop = parse("(assert (<= X_0 0.4))\n(assert (<= (* 2 X_1) 0.1))\n(assert (<= Y_0 0))\n")
    np.testing.assert_array_equal(prop.hi, [0.4, 0.05])


def test_mnistfc_property_parses_into_box_and_nine_terms(shared_dir):
    path = shared_dir / "vnncomp_mnistfc" / "prop_0_0.03.vnnlib"
    start = time.perf_counter()
    (prop,) = read_vnnlib(path)
    elapsed = time.perf_counter() - start
    assert prop.lo.shape == (784,) and len(prop.terms) == 9
    assert np.all(prop.hi - prop.lo <= 2 * 0.03 + 1e-6) and np.all(prop.lo >= 0) and np.all(prop.hi <= 1)
    np.testing.assert_array_equal([prop.lo[765], prop.hi[765]], [0.0, 0.029999999329447746])
    for k, (t, term) in enumerate(zip([0, 1, 2, 3, 4, 5, 6, 7, 9], prop.terms, strict=True)):
        expected = np.zeros((1, 10))
        expected[0, 8], expected[0, t] = 1.0, -1.0
        np.testing.assert_array_equal(term.A, expected, err_msg=f"term {k}")
        np.testing.assert_array_equal(term.b, [0.0])
    assert prop.terms[8].name == "(>= Y_9 Y_8)"
    assert elapsed < 0.5  # typically ~0.04 s; loose for a loaded machine


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("(assert (<= Y_0 1)", r"line 10: '\(' is never closed"),
        ("(assert (<= Y_0 1)))", r"line 10: unexpected '\)'"),
        ("\n(assert (foo Y_0 1))", r"line 11: unsupported operator 'foo' in a formula"),
        ("(assert (<= Y_0 Z_1))", r"line 10: 'Z_1' is neither a number nor a declared variable"),
        ("(assert (<= (* Y_0 Y_1) 1))", r"line 10: product of two variables is not linear"),
        ("(assert (<= (/ Y_0 0) 1))", r"line 10: division by zero"),
        ("(assert (<= Y_0))", r"line 10: \(<= ...\) needs at least two arguments"),
        ("(assert (<= X_0 Y_0))", r"line 10: constraints mixing inputs and outputs"),
        ("(assert (<= (+ X_0 X_1) 1))", r"line 10: constraints over several inputs"),
        ("(assert (or (<= X_0 0) (<= Y_0 1)))", r"line 10: a case constrains no output"),
        ("(declare-const X_0 Real)", r"line 10: X_0 is declared twice"),
        ("(declare-const B Bool)", r"line 10: B has sort 'Bool'"),
        ("(declare-const W_0 Real)", r"line 10: variable 'W_0' must be named X_i"),
        ("(push 1)", r"line 10: unsupported command 'push'"),
        ("(assert (<= Y_0 1e999))", r"line 10: constraint has a NaN or infinite coefficient"),
        ("(assert (<= Y_0 1) (<= Y_1 2))", r"line 10: assert takes exactly one formula"),
        ("(assert (or))", r"line 10: empty \(or\)"),
        ("(assert (not (<= Y_0 1)))", r"line 10: unsupported operator 'not'"),
        ("(assert (<= X_0 1.5e999))\n(assert (<= Y_0 0))", r"line 10: bound on X_0 is not finite"),
        ("(assert (<= X_1 -1))\n(assert (<= Y_0 0))", r"empty input box"),
        ("x", r"line 10: expected a command"),
    ],
)
def test_malformed_input_names_the_line(body, message):
    with pytest.raises(SpecError, match=message):
        parse(body)


TWO_BOXES = """\
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (<= X_1 1))
(assert (>= X_1 0))
(assert (or (and (>= X_0 -1) (<= X_0 -0.5)) (and (>= X_0 0.5) (<= X_0 1)) (and (>= X_0 2) (<= X_0 1))))
(assert (or (<= Y_0 Y_1) (>= Y_1 3)))
"""


def test_a_union_of_input_boxes_gives_one_case_per_box():
    """ACAS Xu property 6's shape: two boxes (a third, empty one dropped) times a disjunction of outputs."""
    cases = parse_vnnlib(TWO_BOXES)
    assert [(p.lo.tolist(), p.hi.tolist()) for p in cases] == [([-1, 0], [-0.5, 1]), ([0.5, 0], [1, 1])]
    for prop in cases:
        assert [t.name for t in prop.terms] == ["(<= Y_0 Y_1)", "(>= Y_1 3)"]


def test_disjuncts_with_their_own_box_and_output_condition_are_grouped_by_box():
    """VNN-COMP's (or (and X-box Y-condition) ...): disjuncts that share a box become terms of one case."""
    box_a = "(>= X_0 0) (<= X_0 1)"
    box_b = "(>= X_0 2) (<= X_0 3)"
    text = ("(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
            f"(assert (or (and {box_a} (<= Y_0 Y_1)) (and {box_b} (<= Y_1 Y_0)) (and {box_a} (>= Y_0 5))))")
    a, b = parse_vnnlib(text)
    assert (a.lo.tolist(), a.hi.tolist(), len(a.terms)) == ([0.0], [1.0], 2)
    assert (b.lo.tolist(), b.hi.tolist(), len(b.terms)) == ([2.0], [3.0], 1)
    np.testing.assert_array_equal(b.terms[0].A, [[-1.0, 1.0]])


def test_only_empty_boxes_are_refused():
    text = TWO_BOXES.replace("(and (>= X_0 -1) (<= X_0 -0.5)) (and (>= X_0 0.5) (<= X_0 1)) ", "")
    with pytest.raises(SpecError, match="empty input box"):
        parse_vnnlib(text)


def test_unbounded_input_and_missing_declarations():
    with pytest.raises(SpecError, match="input X_1 has no finite lower and upper bound"):
        parse_vnnlib(
            "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)"
            "(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= X_1 1))(assert (<= Y_0 0))"
        )
    with pytest.raises(SpecError, match="X_1 is not declared but X_2 is"):
        parse_vnnlib("(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)")
    with pytest.raises(SpecError, match="no Y_i variable is declared"):
        parse_vnnlib("(declare-const X_0 Real)")
    with pytest.raises(SpecError, match="no constraint on the outputs"):
        parse("")


def test_deep_nesting_is_refused_without_recursion_error():
    deep = "(assert " + "(+ " * 5000 + "Y_0" + ")" * 5000 + ")"
    with pytest.raises(SpecError, match="nested deeper than 64"):
        parse(deep)


def test_unreadable_file(tmp_path):
    path = tmp_path / "p.vnnlib"
    path.write_bytes(b"\xff\xfe(declare-const")
    with pytest.raises(SpecError, match="cannot read VNN-LIB file"):
        read_vnnlib(path)


def test_format_assignment_round_trips_exact_values():
    text = format_assignment(np.array([0.1, 1 / 3]), np.array([-2.5]))
    assert text == "((X_0 0.1)\n (X_1 0.3333333333333333)\n (Y_0 -2.5))\n"


VALID = HEADER + "(assert (or (and (>= Y_0 Y_1) (<= (+ Y_2 (* -2 Y_1)) 0.5)) (>= (- Y_2 Y_0) 1)))\n"
ALPHABET = [*"()XY_0123456789.-+*/<=> \n;eE", "assert", "and", "or", "declare-const", "Real", "Y_1", "X_0"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 8), st.lists(st.sampled_from(ALPHABET), max_size=4)),
        max_size=4,
    )
)
def test_fuzz_mutated_valid_file_raises_only_spec_error(edits):
    text = VALID
    for pos, cut, inserted in edits:
        pos = min(pos, len(text))
        text = text[:pos] + "".join(inserted) + text[pos + cut :]
    try:
        cases = parse_vnnlib(text)
    except SpecError:
        return
    assert cases and all(np.all(prop.lo <= prop.hi) and prop.terms for prop in cases)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_raise_only_spec_error(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.vnnlib"
    path.write_bytes(data)
    try:
        cases = read_vnnlib(path)
    except SpecError:
        return
    assert cases and all(np.all(prop.lo <= prop.hi) and prop.terms for prop in cases)
