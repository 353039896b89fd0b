"""The command line: parse and wire. Run control (signals, exit codes) is ``runner``.

Exit codes: 0 every pair ok; 1 finished with failed pairs; 2 usage, configuration or
manifest error, or a run-level failure the user must fix; 3 an endpoint was down for
longer than outage_timeout_s (rerun later); 74 an output could not be written during
the run; 130 stopped by SIGINT; 143 stopped by SIGTERM.

Conventions: ``--version``; ``-v/--verbose`` before or after the subcommand; a usage
error is one line and a pointer to ``--help`` (not argparse's usage block); with
``--log-format json`` (or ``BATCHREK_LOG_FORMAT=json``) errors are JSON lines too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

from batchrek.call import RUNNABLE, operation_hint
from batchrek.errors import (
    ConfigError,
    ManifestUnreadable,
    OutputFailed,
    RunStopped,
    exit_code_of,
)
from batchrek.observe import setup_logging
from batchrek.runner import EXIT_OK, EXIT_USAGE

__all__ = ["main"]

_json_errors = False  # set by main from argv and the environment, before parsing


def _say_error(prog: str, message: str) -> None:
    if _json_errors:
        import logging

        setup_logging("json")
        logging.getLogger("batchrek").error("%s: %s", prog, message)
    else:
        print(f"{prog}: error: {message}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line plus where to read more."""

    def error(self, message: str) -> NoReturn:
        # ``--redo-failed`` takes an optional value, so in ``run --redo-failed m.jsonl``
        # it swallows the manifest; say so instead of only "manifest is required".
        if "manifest" in message and any(a.startswith("--redo-failed") for a in sys.argv):
            message += (
                " (--redo-failed takes the next word as error codes: put it after the "
                "manifest, or write --redo-failed=CODES)"
            )
        _say_error(self.prog, message)
        if not _json_errors:
            print(f"see: {self.prog} --help", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _operations(text: str) -> list[str]:
    """``--operation detect_labels,detect_text``: a comma list, each one checked."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no operation named")
    for name in names:
        if name not in RUNNABLE:
            raise argparse.ArgumentTypeError(f"{name!r} is not an operation{operation_hint(name)}")
    return names


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


def _version() -> str:
    try:
        return version("batchrek")
    except PackageNotFoundError:
        return "unknown"


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "manifest",
        help="manifest: .jsonl/.csv/.txt, S3 Inventory manifest.json, "
        "s3://bucket/prefix/ or a local folder",
    )
    p.add_argument("-o", "--output", help="results: a .jsonl file or s3://bucket/prefix/")
    p.add_argument(
        "--operation",
        dest="operations",
        action="extend",
        type=_operations,
        metavar="OP[,OP]",
        help=f"repeatable or a comma list; of: {', '.join(RUNNABLE)} (default detect_labels)",
    )
    p.add_argument(
        "--format",
        dest="manifest_format",
        choices=("jsonl", "csv", "txt", "inventory", "s3prefix", "dir"),
        help="force the manifest format instead of detecting it",
    )
    p.add_argument("--config", help="a TOML file of settings (see configs/default.toml)")
    p.add_argument("--region", help="Rekognition region (default: the AWS chain, else us-east-1)")
    p.add_argument("--profile", help="AWS profile for credentials and region")
    p.add_argument("--endpoint-url", help="Rekognition endpoint (the emulator, for example)")
    p.add_argument("--s3-endpoint-url", help="S3 endpoint (moto, MinIO, ...)")
    p.add_argument("--concurrency", type=int, help="requests in flight at most (default 64)")
    p.add_argument("--rate", help="TPS per operation, or 'auto' to find the quota (default)")
    p.add_argument("--max-attempts", type=int, help="attempts per request (default 8)")
    p.add_argument("--item-deadline-s", type=float, help="give up retrying after this (300)")
    p.add_argument(
        "--outage-timeout-s",
        type=float,
        help="stop (exit 3) when an endpoint has failed for this long (default 600)",
    )
    p.add_argument("--spool-dir", help="S3 output: local folder for open part files")
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_const",
        const=False,
        help="start afresh instead of skipping pairs already in the output",
    )
    p.add_argument(
        "--redo-failed",
        nargs="?",
        const="all",
        metavar="CODES",
        help="also redo pairs recorded as permanent failures (after fixing their cause): "
        "all, or only these comma-separated error codes (--redo-failed=NoSuchKey,AccessDenied)",
    )
    p.add_argument(
        "--no-dedupe",
        dest="dedupe",
        action="store_const",
        const=False,
        help="analyse an image again when the manifest lists it twice",
    )
    p.add_argument(
        "--oversize",
        choices=("resize", "stage", "fail"),
        help="images over the limits: transcode (default), stage to S3, or fail",
    )
    p.add_argument("--staging-bucket", help="s3://bucket/prefix/ for --oversize stage")
    p.add_argument(
        "--allow-http", action="store_const", const=True, help="fetch plain http:// URLs too"
    )
    p.add_argument(
        "--allow-private-addresses",
        action="store_const",
        const=True,
        help="let URL sources reach private addresses (10/8, 172.16/12, 192.168/16, fc00::/7)",
    )
    p.add_argument(
        "--allow-loopback-addresses",
        action="store_const",
        const=True,
        help="let URL sources reach 127.0.0.1 and ::1 (local use, tests)",
    )
    p.add_argument(
        "--input-formats",
        help="comma-separated image formats to read (default: all on the allow-list)",
    )
    p.add_argument("--limit", type=int, help="process at most N manifest items")
    p.add_argument(
        "--ledger",
        help="a directory or s3://bucket/prefix/ remembering what earlier runs analysed: "
        "unchanged images are skipped, copies reuse their result, only new work is billed",
    )
    p.add_argument(
        "--dry-run",
        action="store_const",
        const=True,
        help="route every image, call nothing; print counts and the cost",
    )
    p.add_argument(
        "--shard-index",
        type=int,
        help="this shard (default JOB_COMPLETION_INDEX / AWS_BATCH_JOB_ARRAY_INDEX)",
    )
    p.add_argument("--shard-count", type=int, help="shards in all (BATCHREK_SHARD_COUNT)")
    p.add_argument(
        "--peers",
        help="where processes sharing the quota leave notes of their rates, so they split "
        "it evenly and take up a finished one's share at once: auto (sharded runs: beside "
        "the output), off, a folder or s3://bucket/prefix/",
    )
    p.add_argument(
        "--grace-period-s",
        type=float,
        help="on SIGTERM, seconds for in-flight calls to finish (default 25)",
    )
    p.add_argument("--metrics-out", help="write the run's metrics JSON here")
    p.add_argument("--metrics-textfile", help="write Prometheus textfile-collector metrics here")
    p.add_argument("--pushgateway", help="push the run's metrics to this Pushgateway URL")
    p.add_argument("--job-name", help="Pushgateway job label (default batchrek)")
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="no live display (periodic log lines stay)",
    )
    p.add_argument("--log-format", choices=("text", "json"), help="log line format")
    p.add_argument("--log-interval-s", type=float, help="seconds between progress log lines (>= 1)")


_NOT_SETTINGS = {"command", "config", "func", "verbose"}


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS and v is not None}


def _cmd_run(args: argparse.Namespace) -> int:
    from batchrek.config import load_settings
    from batchrek.runner import run_until_signalled

    settings = load_settings(_flags(args), config_file=args.config)
    setup_logging(settings.log_format, verbose=args.verbose)
    return run_until_signalled(settings)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from batchrek.emulator.cli import run

    setup_logging("text", verbose=args.verbose)
    return run(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from batchrek.demo import run_demo

    setup_logging("text", verbose=args.verbose)
    return run_demo(args.dir, count=args.count)


def _cmd_report(args: argparse.Namespace) -> int:
    import orjson

    from batchrek.observe import labels_for, report_format, write_report

    report_format(args.output)  # an unknown extension is refused before anything is read
    docs: list[dict[str, Any]] = []
    for path in args.metrics:
        try:
            with open(path, "rb") as fh:
                data = orjson.loads(fh.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read metrics JSON {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} is not a batchrek metrics document (--metrics-out)")
        docs.append(data)
    try:
        if len(docs) == 1:
            write_report(docs[0], args.output)
        else:
            write_report(docs, args.output, labels=labels_for(args.metrics))
    except OSError as exc:
        raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(args.output)
    return EXIT_OK


def _cmd_draw(args: argparse.Namespace) -> int:
    from batchrek.draw import draw_result

    setup_logging("text", verbose=args.verbose)
    draw_result(
        args.results,
        item_id=args.id,
        operation=args.operation,
        out_path=args.output,
        s3_endpoint_url=args.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3"),
        region=args.region,
        profile=args.profile,
    )
    print(args.output)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from batchrek.runner import export_current_view

    setup_logging("text", verbose=args.verbose)
    return export_current_view(
        args.outputs, args.output, s3_endpoint_url=args.s3_endpoint_url, region=args.region
    )


def _parser() -> argparse.ArgumentParser:
    from batchrek.emulator.cli import add_arguments as add_emulator_arguments

    parser = _Parser(
        prog="batchrek",
        description="High-throughput batch processing for Amazon Rekognition Image.",
    )
    parser.add_argument("--version", action="version", version=f"batchrek {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # -v also after the subcommand; SUPPRESS keeps an absent one from undoing a given one.
    verbose = _Parser(add_help=False)
    verbose.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging: routes, retries, rate and concurrency decisions",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[verbose], help="analyse every image of a manifest")
    _add_run_arguments(run)
    run.set_defaults(func=_cmd_run)

    emu = sub.add_parser("emulator", parents=[verbose], help="serve the local Rekognition emulator")
    add_emulator_arguments(emu)
    emu.set_defaults(func=_cmd_emulator)

    demo = sub.add_parser(
        "demo", parents=[verbose], help="run a real batch over example images, locally"
    )
    demo.add_argument("--dir", default="batchrek-demo", help="where to write (batchrek-demo)")
    demo.add_argument(
        "--count", type=_at_least(1), default=24, help="how many example images (24, >= 1)"
    )
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser(
        "report",
        parents=[verbose],
        help="draw a run's metrics, or compare several runs, as .html or .png",
    )
    report.add_argument("metrics", nargs="+", help="--metrics-out JSON files (several: compared)")
    report.add_argument("-o", "--output", required=True, help="report.html or report.png")
    report.set_defaults(func=_cmd_report)

    draw = sub.add_parser(
        "draw", parents=[verbose], help="draw one result's boxes onto its image, to check them"
    )
    draw.add_argument("results", help="a results .jsonl file")
    draw.add_argument("--id", required=True, help="the item id")
    draw.add_argument("--operation", help="which operation's record (default: the first)")
    draw.add_argument("-o", "--output", required=True, help="the picture to write (.png)")
    draw.add_argument("--s3-endpoint-url", help="S3 endpoint for s3:// images")
    draw.add_argument("--region", help="region for s3:// images")
    draw.add_argument("--profile", help="AWS profile for s3:// images")
    draw.set_defaults(func=_cmd_draw)
    export = sub.add_parser(
        "export",
        parents=[verbose],
        help="merge nightly outputs into the current result per (id, operation) + labels",
    )
    export.add_argument(
        "outputs", nargs="+", help="outputs, oldest first: .jsonl files or s3://bucket/prefix/"
    )
    export.add_argument(
        "-o", "--output", required=True, help="current.parquet, current.csv or current.sqlite"
    )
    export.add_argument("--s3-endpoint-url", help="S3 endpoint (moto, MinIO, ...)")
    export.add_argument("--region", help="S3 region")
    export.set_defaults(func=_cmd_export)
    return parser


def _wants_json(argv: Sequence[str]) -> bool:
    if os.environ.get("BATCHREK_LOG_FORMAT", "").strip().lower() == "json":
        return True
    for i, arg in enumerate(argv):
        if arg == "--log-format=json" or (
            arg == "--log-format" and i + 1 < len(argv) and argv[i + 1] == "json"
        ):
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    global _json_errors
    argv = list(sys.argv[1:] if argv is None else argv)
    _json_errors = _wants_json(argv)
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, ManifestUnreadable, OutputFailed, RunStopped) as exc:
        _say_error("batchrek", str(exc))
        return exit_code_of(exc)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
