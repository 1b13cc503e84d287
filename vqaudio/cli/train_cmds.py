"""train_cmds commands."""
