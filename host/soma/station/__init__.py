"""The production line: building and flashing firmware, calibration in the bath, the production bench, traceability."""
