"""unit_testing package."""
