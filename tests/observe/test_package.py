"""The package surface: report and Prometheus export load on first use, not on import."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_importing_observe_loads_neither_report_nor_prometheus() -> None:
    loaded = _modules_after("import batchrek.observe")
    assert "batchrek.observe.metrics" in loaded
    lazy = {"prometheus_client", "batchrek.observe.prometheus", "batchrek.observe.report"}
    assert not lazy & loaded


def test_lazy_names_are_the_module_functions() -> None:
    import batchrek.observe as observe
    from batchrek.observe import prometheus, report

    assert observe.write_report is report.write_report
    assert (observe.push, observe.write_textfile) == (prometheus.push, prometheus.write_textfile)


def test_unknown_name_is_an_attribute_error() -> None:
    import batchrek.observe as observe

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = observe.no_such_name  # type: ignore[attr-defined]
