"""Periodic tasks: schedules, the periodic models, the beat duty and its admin."""
