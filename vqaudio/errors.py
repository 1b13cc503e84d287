"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""


class VQAudioError(Exception):
    """Base class for every error caused by input, files or options rather than a bug."""


class AudioError(VQAudioError):
    """An audio file is missing, unreadable, empty, too short or holds NaN/inf samples."""


class DataError(VQAudioError):
    """A corpus or Kaldi-style data directory is missing or inconsistent."""


class ConfigError(VQAudioError):
    """A config file or `--set key=value` override is invalid."""


class ModelFileError(VQAudioError):
    """A model or checkpoint file is missing, corrupt, foreign or holds pickled objects."""
