"""Errors a user can fix: the CLI prints them as one line and exits with 2."""


class UserError(ValueError):
    """Bad input from the user; the message says what is wrong and how to fix it."""


class DataError(UserError):
    """The dataset cannot be used for classification as given."""


class ModelError(UserError):
    """An unknown model name or an invalid hyper-parameter."""
