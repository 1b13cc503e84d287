"""eval_cmds commands."""
