"""One run, as a task group: the stages wired together.

pipeline   the task group: producer, workers, writer, ticker (wiring only)
work       one item: dedupe, prepare, per operation a paced retried call, records
records    the error / manifest-problem / reused record shapes
services   open and close what a run talks to (AWS clients, sink, image pool)
outcome    how a run ended: exit code, earlier failures, a stop's pairs left
dryrun     route every image, call nothing, price the run
dedupe     in-run deduplication of identical images
streams    memory-stream send/receive without a needless scheduling round trip
halt       the stop switch for run-level failures, and the run's safeguards (breakers)
outcome    how a run ended (RunOutcome: the exit code, and what stopped it)
bucketwatch  InvalidS3ObjectException for a whole bucket, said once
"""

from batchrek.run.dryrun import Plan, dry_run, format_plan
from batchrek.run.outcome import RunOutcome
from batchrek.run.pipeline import run_batch

__all__ = ["Plan", "RunOutcome", "dry_run", "format_plan", "run_batch"]
