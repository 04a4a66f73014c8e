"""Regression runs on the platform: score a dataset version with hitl_client.regress, store
the run, and compare two runs of the same dataset."""

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from hitl_client import regress

from .models import DatasetItem, DatasetVersion, RegressionResult, RegressionRun


def regression_run(
    *,
    version: DatasetVersion,
    agent: Callable,
    agent_name: str,
    agent_version: str = "",
    options: regress.Options | None = None,
) -> RegressionRun:
    """Run every case of `version` against `agent` and store the run with each result."""
    started = timezone.now()
    records = DatasetItem.objects.filter(version=version).order_by("position")
    results = regress.run(
        records.values_list("record", flat=True).iterator(), agent, options or regress.Options()
    )
    passed = sum(r.passed for r in results)
    with transaction.atomic():
        run = RegressionRun.objects.create(
            version=version,
            agent=agent_name,
            agent_version=agent_version,
            started_at=started,
            finished_at=timezone.now(),
            passed=passed,
            failed=len(results) - passed,
        )
        RegressionResult.objects.bulk_create(
            RegressionResult(
                run=run, case_id=r.id, label=r.label, action=r.action, passed=r.passed,
                reason=r.reason,
            )
            for r in results
        )  # fmt: skip
    return run


def compare_runs(before: RegressionRun, after: RegressionRun) -> dict[str, list[dict]]:
    """What changed from `before` to `after` (same dataset): cases fixed, broken, still
    failing, and those only one of the runs has."""
    if before.version.dataset_id != after.version.dataset_id:
        raise ValueError("Only runs of the same dataset compare.")
    old = {r.case_id: r for r in before.results.all()}
    new = {r.case_id: r for r in after.results.all()}
    out: dict[str, list[dict]] = {"fixed": [], "broken": [], "still_failing": [], "new": []}
    for case_id, result in new.items():
        was = old.get(case_id)
        row = {"case_id": case_id, "label": result.label, "reason": result.reason}
        if was is None:
            out["new"].append(row)
        elif result.passed and not was.passed:
            out["fixed"].append(row)
        elif not result.passed:
            out["broken" if was.passed else "still_failing"].append(row)
    return out
