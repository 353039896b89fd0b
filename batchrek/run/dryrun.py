"""--dry-run: read the manifest, route every image, call nothing, price the run.

Local images are read and inspected (that is free); S3 and https images are routed
from what is known without downloading them. Resume is not consulted: the plan is
for the whole manifest (or shard, or --limit).

With a ledger, each pair is first given its verdict, as the run would: unchanged and
reused pairs cost nothing, new and changed ones are routed and priced. An S3 image
whose identity the manifest lacks costs one HEAD here too; an https image would have
to be downloaded to be identified, so it is counted as "unknown" and priced.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from batchrek.call import classify
from batchrek.config import Settings
from batchrek.errors import forget_frames
from batchrek.ledger import Verdict, identify
from batchrek.manifest import read_manifest
from batchrek.models import HttpUrl, ManifestProblem
from batchrek.run.pipeline import no_items
from batchrek.run.services import Services

__all__ = ["Plan", "dry_run", "format_plan"]


@dataclass
class Plan:
    items: int = 0
    manifest_problems: int = 0
    routes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, route)
    verdicts: Counter[str] | None = None  # with a ledger: pairs by verdict, and "unknown"

    @property
    def billable(self) -> int:
        return sum(n for (_, route), n in self.routes.items() if not route.startswith("error"))


async def dry_run(settings: Settings) -> Plan:
    ops = settings.build_operations()
    plan = Plan()
    free = (Verdict.UNCHANGED, Verdict.REUSED)
    async with AsyncExitStack() as stack:
        services = await Services.open(settings, stack)
        entries = read_manifest(
            settings.manifest,
            fmt=settings.manifest_format,
            s3=services.s3,
            options=settings.read_options(),
        )
        others = 0

        def other_shard() -> None:
            nonlocal others
            others += 1

        async for entry in settings.selection().select(entries, on_other_shard=other_shard):
            if isinstance(entry, ManifestProblem):
                plan.manifest_problems += 1
                continue
            plan.items += 1
            prep = services.preparer.for_item(entry)
            try:
                ledger = services.ledger
                identity = None
                if ledger is not None:
                    plan.verdicts = plan.verdicts if plan.verdicts is not None else Counter()
                    is_url = isinstance(entry.source, HttpUrl)
                    identity = await identify(
                        entry, s3=services.s3, read_bytes=None if is_url else prep.source_bytes
                    )
                for op in ops:
                    if ledger is not None and plan.verdicts is not None:
                        if identity is None:
                            plan.verdicts["unknown"] += 1
                        else:
                            verdict = ledger.check(op, entry.id, identity).verdict
                            plan.verdicts[verdict.value] += 1
                            if verdict in free:
                                continue
                    try:
                        route = await prep.plan(op.limits)
                    except Exception as exc:
                        forget_frames(exc)
                        route = f"error ({classify(exc).code})"
                    plan.routes[(op.method, route)] += 1
            finally:
                prep.release()  # its bytes and their share of the budget
    if plan.items + plan.manifest_problems + others == 0:
        no_items(settings)
    return plan


def format_plan(plan: Plan, *, price_per_image: float) -> str:
    lines = [
        "batchrek dry run (nothing was sent)",
        f"  items: {plan.items}, manifest problems: {plan.manifest_problems}",
    ]
    if plan.verdicts is not None:
        v = plan.verdicts
        lines.append(
            f"  ledger: new {v['new']}, changed {v['changed']}, reused {v['reused']}, "
            f"unchanged {v['unchanged']}, unknown {v['unknown']} (pairs; only new, changed "
            "and unknown are billed)"
        )
    for (op, route), n in sorted(plan.routes.items()):
        lines.append(f"  {op:<28} {route:<22} {n}")
    lines.append(
        f"  billable calls: {plan.billable}, estimated cost: "
        f"${plan.billable * price_per_image:,.2f} at ${price_per_image}/image"
    )
    return "\n".join(lines)
