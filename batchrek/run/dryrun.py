"""--dry-run: read the manifest, route every image, call nothing, price the run.

Local images are read and inspected (that is free); S3 and https images are routed
from what is known without downloading them. Resume is not consulted: the plan is
for the whole manifest (or shard, or --limit).
"""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from batchrek.call import classify
from batchrek.config import Settings
from batchrek.errors import forget_frames
from batchrek.manifest import read_manifest
from batchrek.models import ManifestProblem
from batchrek.run.services import Services

__all__ = ["Plan", "dry_run", "format_plan"]


@dataclass
class Plan:
    items: int = 0
    manifest_problems: int = 0
    routes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, route)

    @property
    def billable(self) -> int:
        return sum(n for (_, route), n in self.routes.items() if not route.startswith("error"))


async def dry_run(settings: Settings) -> Plan:
    ops = settings.build_operations()
    plan = Plan()
    async with AsyncExitStack() as stack:
        services = await Services.open(settings, stack)
        entries = read_manifest(
            settings.manifest,
            fmt=settings.manifest_format,
            s3=services.s3,
            options=settings.read_options(),
        )
        async for entry in settings.selection().select(entries):
            if isinstance(entry, ManifestProblem):
                plan.manifest_problems += 1
                continue
            plan.items += 1
            prep = services.preparer.for_item(entry)
            try:
                for op in ops:
                    try:
                        route = await prep.plan(op.limits)
                    except Exception as exc:
                        forget_frames(exc)
                        route = f"error ({classify(exc).code})"
                    plan.routes[(op.method, route)] += 1
            finally:
                prep.release()  # its bytes and their share of the budget
    return plan


def format_plan(plan: Plan, *, price_per_image: float) -> str:
    lines = [
        "batchrek dry run (nothing was sent)",
        f"  items: {plan.items}, manifest problems: {plan.manifest_problems}",
    ]
    for (op, route), n in sorted(plan.routes.items()):
        lines.append(f"  {op:<28} {route:<22} {n}")
    lines.append(
        f"  billable calls: {plan.billable}, estimated cost: "
        f"${plan.billable * price_per_image:,.2f} at ${price_per_image}/image"
    )
    return "\n".join(lines)
