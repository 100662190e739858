"""Errors the user can act on: each message names the file/field and what was expected."""

import re
from urllib.parse import unquote


class ApoError(Exception):
    """Base class for errors reported to the user as one clear line (no traceback)."""


class ConfigError(ApoError):
    """A config file or a command-line value is invalid."""


class EpisodeFormatError(ApoError):
    """A recorded episode file is unreadable or does not match the episode schema."""


class DuplicateEpisodeError(EpisodeFormatError):
    """Two episode files hold the same episode, or two different episodes share an id."""


_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(?::[^/@\s]*)?@")
_URL_WITH_CREDENTIALS = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:]+)"
                                   r"(?::(?P<password>[^/@\s]*))?@(?P<rest>.*)$")


def mask_credentials(text: str) -> str:
    """``s3://key:secret@host/...`` -> ``s3://***@host/...``: a credential embedded in a URL
    never reaches the terminal, a log or a record."""
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)


def split_credentials(url: str | None) -> tuple[str | None, str | None, str | None]:
    """``http://key:secret@host/p`` -> (``http://host/p``, key, secret), percent-decoded; a URL
    without credentials comes back as it is, with (None, None). The URL without them is what
    may be stored or committed; the credentials go only where nothing is shared."""
    found = _URL_WITH_CREDENTIALS.match(url) if url else None
    if found is None:
        return url, None, None
    password = found["password"]
    return (found["scheme"] + found["rest"], unquote(found["user"]),
            None if password is None else unquote(password))
