"""The one exception type for mistakes a user can cause and fix."""


class TRMError(Exception):
    """A user-fixable problem: bad config, missing file, text too long, wrong checkpoint.

    The message always says what is wrong and how to fix it.
    """


class ConfigError(TRMError, ValueError):
    """A config value or key is invalid; the message names the key path."""
