"""Triggers: schedules, webhooks and email as pure building blocks (no server wiring here)."""
