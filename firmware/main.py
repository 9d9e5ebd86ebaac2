"""Power-up entry point: build this unit's board and run the bed application."""

import bed
import board

bed.main(board.build())
