"""The README's Python API section runs as written and prints what it claims."""

import contextlib
import io
import re

from tests.conftest import REPO_ROOT


def test_readme_python_api_block_runs(monkeypatch):
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(REPO_ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    distance, deltas, answer, robust = out.getvalue().strip().splitlines()
    assert re.fullmatch(r"exact \d+\.\d\d\.\.\d+\.\d\d px, target \d", distance)
    assert len(eval(deltas)) == 8
    assert answer in ("holds", "violated")
    pgd, proven, not_refuted = (eval(part) for part in re.findall(r"\[[^\]]*\]", robust))
    assert len(pgd) == len(proven) == len(not_refuted) == 2
    assert all(p <= a <= 8 and p <= n <= 8 for p, a, n in zip(proven, pgd, not_refuted, strict=True))
