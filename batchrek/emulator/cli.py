"""``batchrek emulator``: parse flags, serve until SIGINT/SIGTERM, print the URL.

The lead's main CLI calls ``add_arguments`` on its subparser and ``run`` with the
parsed namespace; ``python -m batchrek.emulator`` does the same on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from batchrek.emulator.runner import Emulator
from batchrek.emulator.settings import EmulatorSettings, SettingsError

__all__ = ["add_arguments", "run", "settings_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = EmulatorSettings()
    add = parser.add_argument
    add("--host", default=d.host, help="address to bind (default %(default)s)")
    add("--port", type=int, default=8765, help="port; 0 picks a free one (default %(default)s)")
    add("--region", default=d.region, help="the emulated region (default %(default)s)")
    add("--s3-endpoint-url", default=None, help="S3 endpoint for S3Object images")
    add("--latency-ms", type=float, default=d.latency_ms, help="mean added latency")
    add("--latency-jitter-ms", type=float, default=d.latency_jitter_ms, help="latency std dev")
    add("--quota-tps", type=float, default=None, help="TPS quota per operation (default: none)")
    add("--throttle-rate", type=float, default=d.throttle_rate, help="share of ThrottlingException")
    add("--fault-rate", type=float, default=d.fault_rate, help="share of InternalServerError")
    add("--drop-rate", type=float, default=d.drop_rate, help="share of dropped connections")
    add("--seed", type=int, default=d.seed, help="seed for latency and fault draws")


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    return EmulatorSettings(
        host=args.host,
        port=args.port,
        region=args.region,
        s3_endpoint_url=args.s3_endpoint_url,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        quota_tps=args.quota_tps,
        throttle_rate=args.throttle_rate,
        fault_rate=args.fault_rate,
        drop_rate=args.drop_rate,
        seed=args.seed,
    )


async def _serve(settings: EmulatorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator(settings) as emu:
        print(emu.endpoint_url, flush=True)  # stdout: the URL alone, for scripts
        print(
            f"batchrek emulator: Rekognition ({settings.region}) at {emu.endpoint_url}; "
            "any credentials will do (requests must be signed, by anyone), e.g.\n"
            f"  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x batchrek run MANIFEST -o OUT "
            f"--endpoint-url {emu.endpoint_url}",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad flags, 1 if it cannot bind."""
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"batchrek emulator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(settings))
    except OSError as exc:
        print(
            f"batchrek emulator: cannot serve on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0
