"""`python -m loyalnest.localstack up|down|status`."""

import sys

from loyalnest.localstack.stack import main

sys.exit(main())
