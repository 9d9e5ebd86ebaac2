"""The host codec against the firmware's own codec run under MicroPython: differential checks and fuzzing."""
