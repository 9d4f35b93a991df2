"""The ground floor every other package stands on; it imports nothing else of this project.

    core.settings       Settings (layered: defaults → mlops.toml → MLOPS_* → options) and every
                        path under the home folder
    core.errors         MlopsError and its exit codes (0 ok, 1 error, 2 usage, 3 check failed)
    core.preprocessing  the one image preprocessing function (training, tests and the API)
    core.actor          who is acting, for the audit log
    core.identity       who is approving, authenticated: Jenkins' input submitter, else the OS account
    core.processes      free loopback port, "wait until ready", "terminate then kill"
    core.process_identity  a pid with its start time and command line; who listens on a port
    core.command        what every command line shares: global options, usage errors, exit codes
    core.gunicorn_launcher  the one way a server verb (serve, ui) execs gunicorn
    core.templates      one autoescaping Jinja environment per package's templates/ folder
    core.digests        content digests of folders (a test suite's digest)
    core.gcs            the one google-cloud-storage client factory
    core.numbers        whole numbers from outside text, ASCII decimal only
    core.git_source     git+URL@REV (pip's form) → a read-only tree of that commit, cached per commit
    core.safe_paths     the one rule for turning an untrusted outside name into a local path under a root

Importing `core` loads none of these (TensorFlow and google-cloud-storage stay unloaded).
See docs/architecture.md for the layers above.
"""

__version__ = "0.1.0"
