"""The pad model (host/soma/sim/pad_model.py, shared with the simulator) wired to the
scripted board: outputs and the heater enable relay in, ADC codes out, stepped at 10 Hz of
virtual time."""

from pad_model import PadModel

STEP_US = 100_000


class PadPlant(PadModel):
    def __init__(self, board, ambient_c=22.0, start_c=None, sleeper=True, **tolerances):
        super().__init__(room_c=ambient_c, start_c=start_c, sleeper=sleeper, **tolerances)
        self.board = board
        self._last_us = None
        self.update(0)

    def update(self, now_us):
        """Advance to now_us (at most 10 times a simulated second) and set the ADC codes."""
        if self._last_us is not None and now_us - self._last_us < STEP_US:
            return
        seconds = 0.0 if self._last_us is None else (now_us - self._last_us) / 1e6
        self._last_us = now_us
        outputs = self.board.outputs
        self.enable = outputs.heat_enabled  # the relay the firmware drives
        codes = self.step(seconds, outputs.levels)
        for channel in range(6):
            self.board.adc.codes[channel] = codes[channel]
