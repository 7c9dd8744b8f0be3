"""The record: the task row, its QuerySet states, every transition (transitions, revocation), the hot-path SQL."""
