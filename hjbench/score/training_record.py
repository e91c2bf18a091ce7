"""The training record of a fitted method as results columns (steps, why it stopped, budget mode,
backend, ensemble size, divergence, data regime)."""

from __future__ import annotations

NAN = float("nan")

__all__ = ["training_record"]


def _field(log, name: str, default=None):
    return log.get(name, default) if isinstance(log, dict) else getattr(log, name, default)


def _stop(log) -> str:
    reason = _field(log, "stop_reason")
    if reason:
        return str(reason)
    return "early_stopped" if _field(log, "stopped_early") else "unknown"


def _members(log) -> list:
    return list(log) if isinstance(log, (list, tuple)) else [log]


def training_record(method) -> tuple[dict, dict]:
    """(columns, reasons) of the training record of a fitted ``method``.

    Reads ``method.training_`` ({stage: TrainLog, or a list of TrainLogs, one per ensemble
    member}), ``method.ensemble_size_`` and ``method.backend_`` when present:

    * steps_run: sum over stages (and members) of TrainLog.steps_run;
    * stop_reason: "stage:reason" per stage, comma-joined (members' distinct reasons joined
      by "|"); "" for a method without a training record (nothing learned);
    * budget_mode, backend: distinct values over stages, "|"-joined;
    * ensemble_size: ``ensemble_size_`` (else 1 with a record, NaN without);
    * diverged: any member of any stage stopped with "diverged".
    """
    logs = getattr(method, "training_", None) or {}
    cols: dict = {"data_regime": str(getattr(method, "data_regime", "") or "")}
    reasons: dict = {}
    if not logs:
        cols.update(steps_run=NAN, stop_reason="", budget_mode=None, diverged=None,
                    backend=getattr(method, "backend_", None), ensemble_size=NAN)
        why = f"training: {getattr(method, 'name', type(method).__name__)} has no training record (not learned)"
        reasons = {c: why for c in ("steps_run", "budget_mode", "diverged", "ensemble_size")}
        if cols["backend"] is None:
            reasons["backend"] = why
        return cols, reasons
    members = {stage: _members(log) for stage, log in logs.items()}
    flat = [m for ms in members.values() for m in ms]
    distinct = lambda name: "|".join(dict.fromkeys(str(_field(m, name)) for m in flat if _field(m, name) is not None))  # noqa: E731
    stop = ",".join(f"{stage}:" + "|".join(dict.fromkeys(_stop(m) for m in ms))
                    for stage, ms in members.items())
    cols.update(steps_run=float(sum(int(_field(m, "steps_run", 0) or 0) for m in flat)), stop_reason=stop,
                budget_mode=distinct("mode") or None, backend=getattr(method, "backend_", None) or distinct("backend") or None,
                ensemble_size=float(getattr(method, "ensemble_size_", 1) or 1),
                diverged=any(_field(m, "stop_reason") == "diverged" for m in flat))
    for col in ("budget_mode", "backend"):
        if cols[col] is None:
            reasons[col] = f"training: the training record gives no {col}"
    return cols, reasons
