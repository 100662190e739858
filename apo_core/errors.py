"""Errors the user can act on: each message names the file/field and what was expected."""

import re


class ApoError(Exception):
    """Base class for errors reported to the user as one clear line (no traceback)."""


class ConfigError(ApoError):
    """A config file or a command-line value is invalid."""


class EpisodeFormatError(ApoError):
    """A recorded episode file is unreadable or does not match the episode schema."""


class DuplicateEpisodeError(EpisodeFormatError):
    """Two episode files hold the same episode, or two different episodes share an id."""


_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(?::[^/@\s]*)?@")


def mask_credentials(text: str) -> str:
    """``s3://key:secret@host/...`` -> ``s3://***@host/...``: a credential embedded in a URL
    never reaches the terminal, a log or a record."""
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)
