"""The bench plan: a declarative TOML file of steps, loaded and checked against the measuring
kinds (soma.station.bench.kinds); the plans shipped live in host/soma/station/plans/."""

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soma.errors import SomaError
from soma.files import read_document
from soma.station.bench.kinds import KINDS

DEFAULT_PLAN = Path(__file__).parent.parent / "plans" / "sb1.toml"


class PlanError(SomaError):
    """A plan file that cannot run: the message says where and why."""


@dataclass
class Step:
    id: str
    kind: str
    params: dict
    limits: dict  # measurement name -> (low, high)


@dataclass
class Plan:
    name: str
    version: int
    steps: list
    path: str = ""
    partial: bool = False  # some of the plan file's steps left out: its verdict is not the unit's

    def only(self, step_ids: Collection[str]) -> "Plan":
        """This plan cut down to the given steps (in plan order)."""
        unknown = set(step_ids) - {step.id for step in self.steps}
        if unknown:
            known = ", ".join(step.id for step in self.steps)
            raise PlanError(f"{self.path}: no step {', '.join(sorted(unknown))} (steps: {known})")
        steps = [step for step in self.steps if step.id in step_ids]
        return Plan(self.name, self.version, steps, self.path, self.partial or len(steps) < len(self.steps))

    @property
    def scope(self) -> str:
        """The traceability records' scope of a run of this plan: full or partial."""
        return "partial" if self.partial else "full"

    def with_params(self, kind: str, **params: Any) -> "Plan":
        """This plan with `params` set on every step of `kind`, checked as a plan file's are."""
        if kind not in KINDS:
            raise PlanError(f"no kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        for name, value in params.items():
            check = KINDS[kind].params.get(name)
            if check is None:
                raise PlanError(f"{kind}: unknown parameter {name!r}")
            message = check(value)
            if message:
                raise PlanError(f"{kind}: {name} {message}")
        steps = [
            Step(step.id, step.kind, {**step.params, **params}, step.limits) if step.kind == kind else step
            for step in self.steps
        ]
        return Plan(self.name, self.version, steps, self.path, self.partial)

    @property
    def needs_fixture(self) -> bool:
        return any(KINDS[step.kind].needs_fixture for step in self.steps)

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        path = Path(path)
        return cls.from_data(read_document(path, "plan", PlanError), str(path))

    @classmethod
    def from_data(cls, data: dict[str, Any], where: str = "plan") -> "Plan":
        unknown = set(data) - {"name", "version", "step"}
        if unknown:
            raise PlanError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: name, version, step)")
        if not isinstance(data.get("name"), str) or not isinstance(data.get("version"), int):
            raise PlanError(f"{where}: needs a name (text) and a version (integer)")
        raw_steps = data.get("step")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise PlanError(f"{where}: no [[step]] tables")
        steps: list[Step] = []
        seen: set[str] = set()
        for number, raw in enumerate(raw_steps, 1):
            step = _parse_step(raw, f"{where}: step {number}")
            if step.id in seen:
                raise PlanError(f"{where}: step {number}: id {step.id!r} used twice")
            seen.add(step.id)
            steps.append(step)
        return cls(data["name"], data["version"], steps, where)


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: not a table")
    step_id, kind_name = raw.get("id"), raw.get("kind")
    if not isinstance(step_id, str) or not step_id:
        raise PlanError(f"{where}: needs an id")
    where = f"{where} ({step_id})"
    kind = KINDS.get(kind_name) if kind_name is not None else None
    if kind is None or kind_name is None:
        raise PlanError(f"{where}: unknown kind {kind_name!r} (known: {', '.join(sorted(KINDS))})")
    params = {key: value for key, value in raw.items() if key not in ("id", "kind", "limits")}
    unknown = set(params) - set(kind.params)
    if unknown:
        raise PlanError(f"{where}: unknown parameters {', '.join(sorted(unknown))} for {kind_name}")
    for name, check in kind.params.items():
        if name not in params:
            raise PlanError(f"{where}: parameter {name!r} missing")
        message = check(params[name])
        if message:
            raise PlanError(f"{where}: {name} {message}")
    limits: dict[str, tuple[float | None, float | None]] = {}
    for name, bounds in raw.get("limits", {}).items():
        if name not in kind.measures:
            raise PlanError(f"{where}: {kind_name} measures no {name!r} (it measures {', '.join(kind.measures)})")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise PlanError(f"{where}: limits.{name} must be {{ min = .., max = .. }} (either may be left out)")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bounds.values()):
            raise PlanError(f"{where}: limits.{name} bounds must be numbers")
        limits[name] = (bounds.get("min"), bounds.get("max"))
    return Step(step_id, kind_name, params, limits)
