"""retraining package."""
