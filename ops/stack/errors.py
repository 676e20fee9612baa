"""Errors of the local stack launcher, each one line that names the fix::

StackError
├── MissingDependency   a binary or package is not installed
├── PortTaken           a configured port is held by another process
├── ServiceFailed       a service exited or did not become ready in time
└── StackConfigError    bad settings or a broken state folder
"""


class StackError(Exception):
    """Base of every launcher failure; `str()` is the one-line message shown to the user."""


class MissingDependency(StackError):
    """A program the stack needs is not installed."""


class PortTaken(StackError):
    """A port the stack wants to listen on is already in use by something else."""


class ServiceFailed(StackError):
    """A service exited during start-up or did not answer before its deadline."""


class StackConfigError(StackError):
    """Settings that cannot work (bad port, unreadable state folder)."""
