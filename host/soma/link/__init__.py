"""The line to one unit: the serial port, the REPL transport (mpremote's) and the management
client; `open_unit` opens a unit session over them (soma.link.session)."""
