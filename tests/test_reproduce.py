"""Reproduction matrices: a full row of the shipped one, a condition off its expected score, a broken matrix."""
import pytest

from tests.helpers import needs_data, run_cli, run_main

pytestmark = pytest.mark.slow


@needs_data
def test_a_full_row_of_the_shipped_matrix_reproduces_mteb(tmp_path):
    proc = run_cli("reproduce", "--only", "minilm-stsb", cwd=tmp_path)
    [row] = [line for line in proc.stdout.splitlines() if line.startswith("minilm-stsb")]
    condition, metric, expected, got, delta, tolerance, verdict = row.split()
    assert (metric, expected, verdict) == ("stsb/spearman", "0.82032", "OK") and abs(float(delta)) <= 0.002
    assert proc.stdout.strip().endswith("1 of 1 conditions reproduced")


def test_a_score_off_its_expected_value_or_a_failed_run_is_a_fail(tmp_path, tiny_model_path):
    matrix = tmp_path / "mine.yaml"
    matrix.write_text(f"""source: a test
tolerance: 0.01
conditions:
  tiny-sts:
    overrides: [eval=sts, eval.max_pairs=20, model.name_or_path={tiny_model_path}]
    expected: {{stsb/spearman: 0.99}}
  broken:
    overrides: [eval=sts, eval.max_pairs=20, model.name_or_path=/no/such/model]
    expected: {{stsb/spearman: 0.5}}
""")
    proc = run_cli("reproduce", str(matrix), cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith(("tiny-sts", "broken"))}
    assert rows["tiny-sts"].split()[3] != "-" and rows["tiny-sts"].rstrip().endswith("FAIL")
    assert "FAIL: model.name_or_path=/no/such/model" in rows["broken"]
    assert "0 of 2 conditions reproduced; FAILED: broken, tiny-sts" in proc.stdout


def test_a_broken_matrix_or_an_unknown_condition_stops_with_one_line(tmp_path):
    matrix = tmp_path / "bad.yaml"
    matrix.write_text("conditions:\n  a:\n    overides: [eval=sts]\n    expected: {stsb/spearman: 0.5}\n")
    proc = run_main("reproduce", str(matrix), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "bad.yaml: conditions.a.overides:" in proc.stderr.strip().splitlines()[-1]
    proc = run_main("reproduce", "--only", "minilm-nope", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--only minilm-nope: no such condition" in proc.stderr
    proc = run_main("reproduce", "nosuchmatrix", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "neither a file nor a shipped matrix (beir, local)" in proc.stderr
