"""cdp-preflight: checks a host (robot PC or simulation machine) before the arm moves."""

from .preflight import FAIL, PASS, SKIP, WARN, CheckResult, PreflightConfig, passed, run_preflight

__all__ = ["CheckResult", "PreflightConfig", "run_preflight", "passed", "PASS", "WARN", "FAIL", "SKIP"]
