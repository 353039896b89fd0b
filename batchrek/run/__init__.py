"""One run, as a task group: the stages wired together.

pipeline   the task group: producer, workers, writer, ticker (wiring only)
work       one item: dedupe, prepare, per operation a paced retried call, records
records    the error / manifest-problem / reused record shapes
services   open and close what a run talks to (AWS clients, sink, image pool)
outcome    how a run ended: exit code, earlier failures, a stop's pairs left
stop       why a run stopped (StopReason: kind, message, what to do, exit code)
ending     the end of every run, finished or stopped: metrics document, summary, exit
summary    the human summary block
dryrun     route every image, call nothing, price the run
dedupe     in-run deduplication of identical images
streams    memory-stream send/receive without a needless scheduling round trip
halt       the stop switch for run-level failures, and the run's safeguards (breakers)
bucketwatch  InvalidS3ObjectException for a whole bucket, said once
"""

from batchrek.run.dryrun import Plan, dry_run, format_plan
from batchrek.run.ending import Ending, end_of_run
from batchrek.run.outcome import RunOutcome
from batchrek.run.pipeline import run_batch
from batchrek.run.stop import EXIT_SIGNAL, StopReason, stop_reason
from batchrek.run.summary import format_summary

__all__ = [
    "EXIT_SIGNAL",
    "Ending",
    "Plan",
    "RunOutcome",
    "StopReason",
    "dry_run",
    "end_of_run",
    "format_plan",
    "format_summary",
    "run_batch",
    "stop_reason",
]
