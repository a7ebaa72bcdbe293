"""The one exception type for mistakes a person can fix (bad flags, files, data)."""

import click


class UserError(click.ClickException):
    """Printed as one clear line by the CLI and exits non-zero, without a traceback."""

    exit_code = 2
