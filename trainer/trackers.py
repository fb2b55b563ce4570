"""The run's metrics in the tools researchers watch: TensorBoard, Weights & Biases, trackio.

The run config's `report_to` (the name TRL uses) lists them. Each gets every record of metrics.jsonl
under the same names (`reward`, `success`, `grpo/loss`, ...; the text fields and the wall-clock time
left out) and each evaluation's avg@k and pass@k per environment and tier (`eval/<env>/<tier>/avg@k`;
the base model's, where a warm start follows it, as `eval_base/...`). The x axis is the global step:
GRPO steps counted over all stages, 1 for the first; evaluations are logged at the steps done when
they ran (0 before GRPO).

TensorBoard writes to `<run_dir>/tensorboard`; a resumed run starts its writer with `purge_step` at its
first replayed step, so TensorBoard drops what the killed run logged beyond its checkpoint and shows
each step once. W&B keeps one run per run folder (its id in `<run_dir>/wandb-id`, files in
`<run_dir>/wandb`) and resumes it; it ignores steps below the last one it holds, so the replayed steps
keep the values the killed run logged (a resume replays the same tasks and seeds). trackio resumes the
run named after the run folder. Project names: $WANDB_PROJECT and $TRACKIO_PROJECT (default gymwire).
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["TRACKERS", "Trackers", "eval_scalars", "missing", "scalars"]

# report_to value -> (the module it needs, the gymwire extra that installs it)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "train"),
    "wandb": ("wandb", "wandb"),
    "trackio": ("trackio", "trackio"),
}
_NOT_METRICS = {"step", "time"}  # the x axis, and a wall-clock timestamp


def missing(report_to: Iterable[str]) -> str:
    """Why a requested tracker cannot run here ("" when all can): checked with the config, before any model loads."""
    for name in report_to:
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            return (
                f"{name} needs the {module} package, which is not installed: "
                f'pip install "gymwire[{extra}]" (in a checkout: pip install -e ".[{extra}]")'
            )
    return ""


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics.jsonl record, under their own names."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key not in _NOT_METRICS and isinstance(value, int | float):
            out[key] = float(value)
    return out


def eval_scalars(rows: Iterable[Any], prefix: str = "eval") -> dict[str, float]:
    """avg@k and pass@k of each row (EvalRow or its dict) as `<prefix>/<env>/<tier>/avg@k`."""
    out: dict[str, float] = {}
    for row in rows:
        r = row if isinstance(row, Mapping) else row.as_dict()
        where = "/".join(str(p) for p in (r["env"], r.get("difficulty", "")) if p)
        out[f"{prefix}/{where}/avg@{r['k']}"] = float(r["avg_at_k"])
        out[f"{prefix}/{where}/pass@{r['k']}"] = float(r["pass_at_k"])
    return out


class _Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class _TensorBoard:
    def __init__(self, run_dir: Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()  # a killed run keeps what it logged

    def close(self) -> None:
        self.writer.close()


class _RunTracker:
    """A tool whose run object logs a dict at a step and finishes (W&B, trackio)."""

    run: Any

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class _WandB(_RunTracker):
    def __init__(self, run_dir: Path, name: str, config: dict[str, Any]) -> None:
        import wandb

        id_file = run_dir / "wandb-id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "gymwire",
            name=name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
        )


class _Trackio(_RunTracker):
    def __init__(self, name: str, config: dict[str, Any]) -> None:
        import trackio

        self.run = trackio.init(
            project=os.environ.get("TRACKIO_PROJECT") or "gymwire",
            name=name,
            config=config,
            resume="allow",
            embed=False,
        )


class Trackers:
    """The trackers of `report_to`, logged to together. `purge_step`: a resumed run's first replayed
    step (what was logged from there on is discarded where the tool can)."""

    def __init__(
        self,
        report_to: Sequence[str],
        run_dir: str | os.PathLike[str],
        *,
        name: str = "",
        config: dict[str, Any] | None = None,
        purge_step: int | None = None,
    ) -> None:
        problem = missing(report_to)
        if problem:
            raise RuntimeError(f"report_to: {problem}")
        folder = Path(run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = name or folder.resolve().name
        self.trackers: list[_Tracker] = []
        try:
            for tool in dict.fromkeys(report_to):
                if tool == "tensorboard":
                    self.trackers.append(_TensorBoard(folder, purge_step))
                elif tool == "wandb":
                    self.trackers.append(_WandB(folder, name, config or {}))
                elif tool == "trackio":
                    self.trackers.append(_Trackio(name, config or {}))
                else:
                    raise ValueError(f"report_to: {tool!r} is not one of {', '.join(TRACKERS)}")
        except BaseException:
            self.close()
            raise

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        values = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if values:
            for tracker in self.trackers:
                tracker.log(values, step)

    def log_record(self, record: Mapping[str, Any], step: int) -> None:
        """One metrics.jsonl record at global step `step`."""
        self.log(scalars(record), step)

    def log_eval(self, rows: Iterable[Any], step: int, prefix: str = "eval") -> None:
        self.log(eval_scalars(rows, prefix), step)

    def close(self) -> None:
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.close()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
