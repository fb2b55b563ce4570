"""The protocol conformance suite (`gymwire check ADDRESS`)."""

from gymwire.env_servers.conformance.suite import RULES, Result, Violation, format_report, run_suite

__all__ = ["RULES", "Result", "Violation", "format_report", "run_suite"]
