"""One error family for the core; shells map it to an exit code or an ``st.error``."""


class ComplianceError(Exception):
    """A problem the user can fix; the message is shown to them as is, on one line."""

    def __init__(self, message: str) -> None:
        # Names taken from user input may hold line breaks; the message must not.
        super().__init__(" ".join(str(message).split("\n")).replace("\r", " "))


class ConfigError(ComplianceError):
    """The policy file or the environment is wrong."""


class NotFound(ComplianceError):
    """A bucket, batch, record or request that does not exist."""


class Conflict(ComplianceError):
    """The action clashes with the current state, e.g. a batch someone already reviewed."""


class InvalidInput(ComplianceError):
    """A value given by the user is malformed or out of range."""


class PermissionDenied(ComplianceError):
    """The acting person lacks the role ([roles] in the policy) this decision needs."""
