"""assay: detection scenarios over windowed per-key state.

    >>> import assay
    >>> alerts = assay.run("scenarios.yaml", "events.parquet")
"""

from .alerts import alert_id, read_alerts, write_alerts
from .api import RunResult, run, run_detailed, stream
from .engine import Engine
from .errors import AssayError, InputError, ScenarioError, UsageError
from .events import read_events
from .scenarios import (
    Metric,
    Scenario,
    ScenarioFile,
    build_scenario,
    load_scenarios,
    parse_scenarios,
)

__version__ = "0.1.0"

__all__ = [
    "AssayError", "Engine", "InputError", "Metric", "RunResult", "Scenario", "ScenarioError",
    "ScenarioFile", "UsageError", "alert_id", "build_scenario", "load_scenarios", "parse_scenarios",
    "read_alerts", "read_events", "run", "run_detailed", "stream", "write_alerts", "__version__",
]
