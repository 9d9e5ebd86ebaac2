"""The Soma wire protocol: one construct schema, its generated firmware codec and tools."""
