"""The one google-cloud-storage client factory (the registry, gs:// datasets and the model tests).

Which project the client bills and lists under:
- against an emulator (STORAGE_EMULATOR_HOST set: tests, fake-gcs-server) the client gets anonymous
  credentials and the project GOOGLE_CLOUD_PROJECT names, else "mlops-local" (an emulator accepts any);
- against real GCS it gets Application Default Credentials and the project the client library
  finds itself: GOOGLE_CLOUD_PROJECT, else the credentials' own project. A fixed name here would
  bill the wrong project.
Reading and writing objects in an existing bucket needs no project; only creating buckets does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.errors import MlopsError

if TYPE_CHECKING:
    from google.cloud import storage

EMULATOR_PROJECT = "mlops-local"


class CredentialsError(MlopsError):
    """No Google credentials were found for a gs:// location."""


def storage_client() -> storage.Client:
    """A storage client for the emulator or for real GCS; a clear error when no credentials are set."""
    from google.cloud import storage  # loaded only when a gs:// location is used

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_PROJECT
        return storage.Client(project=project, credentials=AnonymousCredentials())
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return storage.Client()
    except DefaultCredentialsError as exc:
        first = str(exc).splitlines()[0]
        raise CredentialsError(
            f"no Google credentials for gs:// ({first}); run "
            "'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
