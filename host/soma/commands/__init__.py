"""One module per `soma` subcommand, each defining `command`."""
