"""codec_cmds commands."""
