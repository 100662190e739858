"""Errors the user can act on: each message names the file/field and what was expected."""


class ApoError(Exception):
    """Base class for errors reported to the user as one clear line (no traceback)."""


class ConfigError(ApoError):
    """A config file or a command-line value is invalid."""


class EpisodeFormatError(ApoError):
    """A recorded episode file is unreadable or does not match the episode schema."""


class DuplicateEpisodeError(EpisodeFormatError):
    """Two episode files hold the same episode, or two different episodes share an id."""
