"""Errors a registry user can cause; each is an MlopsError (one line, exit code 1 unless its class says)."""

from __future__ import annotations

from core.errors import CheckFailed, MlopsError, UsageError


class RegistryError(MlopsError):
    """Something about the registry went wrong; the message says what to do."""


class RefError(RegistryError, UsageError):
    """A ref is malformed or names nothing: the caller typed it wrong (exit code 2)."""


class NotFoundError(RegistryError):
    """The registry, a version or a file does not exist."""


class ConflictError(RegistryError):
    """Another writer changed the same thing first; nothing was changed by this call."""


class IntegrityError(RegistryError):
    """A file does not match the sha256 or size recorded in its manifest."""


class SignatureError(IntegrityError):
    """A version is unsigned where a signature is required, signed by a foreign key, or altered."""


class PolicyError(RegistryError, CheckFailed):
    """The promotion policy said no (approver, gate, tests): exit code 3, nothing changed."""


class AuditChainError(RegistryError):
    """The audit log's hash chain is broken: an event was deleted, edited or reordered."""
