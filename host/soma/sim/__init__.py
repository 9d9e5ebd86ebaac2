"""The simulated default: virtual beds (the real firmware under the MicroPython unix port)
and the world they live in."""
