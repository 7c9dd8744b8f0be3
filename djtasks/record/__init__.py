"""The record: the task row, its states and every transition, and the hot-path SQL."""
