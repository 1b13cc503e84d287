"""data_cmds commands."""
