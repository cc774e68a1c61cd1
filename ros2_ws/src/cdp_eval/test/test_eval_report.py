"""Results file semantics and the report, from synthetic trials (no ROS, no simulator)."""

from __future__ import annotations

import json
import math

import pytest
from cdp_eval.report import mcnemar_exact, paired, write_report
from cdp_eval.results import ResultsError, ResultsLog, read_results


def test_mcnemar_exact_matches_the_binomial_tail():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 6) == pytest.approx(2 * (1 + 7) / 128)  # 0.125
    assert mcnemar_exact(6, 1) == mcnemar_exact(1, 6)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0
    # 2 vs 12 discordant pairs: sum_{k<=2} C(14,k) / 2^14, doubled
    assert mcnemar_exact(2, 12) == pytest.approx(2 * (1 + 14 + 91) / 2**14)


def synthetic_rows(n: int = 20) -> list[dict]:
    rows = []
    for t in range(n):
        seed = 1000 + t
        a_ok = t % 10 != 0  # A fails trials 0, 10
        b_ok = t % 2 == 0  # B succeeds on even trials
        for pol, ok, err in (("cdp", a_ok, 2.0 + t % 3), ("dp", b_ok, 6.0 + t % 5)):
            rows.append(
                {
                    "trial": t,
                    "policy": pol,
                    "seed": seed,
                    "success": ok,
                    "outcome": "success" if ok else "failure",
                    "final_error_mm": err,
                    "time_to_success_s": 3.0 + 0.1 * t if ok else None,
                    "policy_latency_p50_ms": 15.0,
                    "policy_latency_p99_ms": 30.0 + t,
                    "obs_to_chunk_p50_ms": 35.0,
                    "interventions": t % 4,
                    "intervention_messages": t % 7,
                }
            )
    return rows


def test_paired_table_counts_discordant_pairs():
    c = paired(synthetic_rows(), "cdp", "dp")
    # A fails 0 and 10 (both even: B succeeded there); B fails the 10 odd trials, where A succeeded.
    assert (c["pairs"], c["both"], c["only_a"], c["only_b"], c["neither"]) == (20, 8, 10, 2, 0)
    assert c["mcnemar_p"] == pytest.approx(mcnemar_exact(10, 2))
    assert c["a_more_precise_pairs"] == 20


def test_paired_refuses_unpaired_seeds():
    rows = synthetic_rows(2)
    rows[1]["seed"] = 5
    with pytest.raises(ValueError, match="not paired"):
        paired(rows, "cdp", "dp")


def test_report_from_synthetic_jsonl(tmp_path):
    log = ResultsLog(tmp_path, "h1")
    for r in synthetic_rows():
        log.append(r)
    (tmp_path / "protocol.json").write_text(
        json.dumps(
            {
                "protocol_hash": "h1",
                "protocol": {
                    "name": "synthetic",
                    "task": "reach_precise",
                    "policies": {"cdp": "a.onnx", "dp": "b.onnx"},
                    "trials": 20,
                    "interleaving": "ABAB",
                    "time_limit_s": 8.0,
                    "use_sim": True,
                },
            }
        )
    )
    md = write_report(tmp_path)
    text = md.read_text()
    for f in ("success.png", "per_trial.png", "paired.png"):
        assert (tmp_path / f).stat().st_size > 5000
        assert f"({f})" in text
    assert "PARTIAL" not in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"]
    cdp, dp = summary["policies"]["cdp"], summary["policies"]["dp"]
    assert (cdp["successes"], dp["successes"]) == (18, 10)
    lo, hi = cdp["ci95"]
    assert lo < 0.9 < hi and 0.6 < lo and hi < 1.0
    assert summary["paired"][0]["mcnemar_p"] == pytest.approx(2 * sum(math.comb(12, k) for k in range(3)) / 2**12)
    assert "| cdp vs dp | 20 | 8 | 10 | 2 | 0 |" in text


def test_partial_report_is_labelled(tmp_path):
    log = ResultsLog(tmp_path, "h1")
    for r in synthetic_rows(3):
        log.append(r)
    (tmp_path / "protocol.json").write_text(
        json.dumps({"protocol": {"name": "p", "policies": {"cdp": "", "dp": ""}, "trials": 20}})
    )
    text = write_report(tmp_path, partial_note="stopped at the deadline").read_text()
    assert "**PARTIAL RESULTS**: 6 of 40 planned trials recorded. stopped at the deadline" in text


def test_results_log_resumes_and_refuses_mixing(tmp_path):
    log = ResultsLog(tmp_path, "h1")
    log.append({"trial": 0, "policy": "A", "seed": 1})
    with pytest.raises(ResultsError, match="already recorded"):
        log.append({"trial": 0, "policy": "A", "seed": 1})
    # A kill during a write leaves a torn last line: it is dropped, the trial counts as not run.
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"protocol_hash": "h1", "trial": 0, "policy": "B", "se')
    again = ResultsLog(tmp_path, "h1")
    assert again.done() == {(0, "A")}
    again.append({"trial": 0, "policy": "B", "seed": 1})
    assert [(r["trial"], r["policy"]) for r in read_results(tmp_path / "results.jsonl")] == [(0, "A"), (0, "B")]
    with pytest.raises(ResultsError, match="another protocol"):
        ResultsLog(tmp_path, "h2")
