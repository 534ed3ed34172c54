"""The sample template of the synth tests, and rendering a template to bytes."""

from __future__ import annotations

from typing import Any

from runyard import synth

CUSTOMERS: dict[str, Any] = {"name": "customers", "locale": "en_US", "fields": [
    {"name": "id", "generator": "sequence", "start": 1},
    {"name": "name", "generator": "person.full_name"},
    {"name": "email", "generator": "person.email"},
    {"name": "city", "generator": "address.city"},
    {"name": "born", "generator": "date", "min": "1940-01-01", "max": "2008-12-31"},
    {"name": "amount", "generator": "float", "distribution": "lognormal", "mean": 4, "sigma": 1, "decimals": 2},
    {"name": "tier", "generator": "choice", "values": ["free", "pro", "enterprise"], "weights": [0.7, 0.25, 0.05]},
    {"name": "total", "generator": "formula", "expression": "round(amount * 1.2, 2)", "null_rate": 0.1},
]}


def render(template: synth.Template, fmt: str, count: int, seed: Any = 7, options: dict | None = None,
           **kwargs: Any) -> bytes:
    plan = synth.plan_generation(template, count=count, seed=seed)
    return b"".join(synth.stream(plan, fmt, options, **kwargs))
