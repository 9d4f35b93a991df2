"""Production monitoring's analysis: live traffic and feedback against a version's reference profile.

Sits above registry (it reads the store's monitoring/ area and the version's profile) and the ground
modules (core.image_stats); the `mlops monitor` verb (mlops/monitor.py) wraps it with the CLI, the
email and the optional data-pipeline trigger.
"""
