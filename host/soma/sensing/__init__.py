"""Host-side sensing tools: recordings replayed through the firmware's pipeline, filter design, plots."""
