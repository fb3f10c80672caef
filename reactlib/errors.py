"""The two kinds of error a user can act on, and how the command line reports them.

* :class:`UsageError`: a command, option, setting or manifest used wrongly. ``python -m reactlib``
  prints it and exits with status 2.
* :class:`DataError`: an input file that cannot be used (unreadable, wrong shape, NaN, no face,
  missing modality). The message names the file and the problem; the command line prints it and
  exits with status 1.

Both subclass ``ValueError``, so library callers that catch ``ValueError`` keep working. Any other
exception is a bug: the command line lets it through with its traceback instead of passing it
off as the user's mistake.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A command, option or setting used wrongly (exit status 2)."""


class DataError(ValueError):
    """An input file that cannot be used; the message names the file and the problem (exit 1)."""
