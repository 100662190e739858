"""Constants shared by `flows.cli` and its command-group modules (kept apart to avoid circular imports)."""

UPDATE_METHODS = ["dagger", "sirius", "dpo", "kto", "apo"]
