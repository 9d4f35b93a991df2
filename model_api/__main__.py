"""`python -m model_api`: the serving entry point (model_api.cli.main), as the `mlops-serve` script."""

import sys

from model_api.cli import main

sys.exit(main())
