"""What the testnet's forkserver imports once for every daemon it forks (forkserver.py).

Importing must not start JAX's runtime (no device arrays at import time anywhere here).
"""

import daemons.cli.main
import daemons.client.service
import daemons.org.service
import daemons.testnet.cli  # noqa: F401
import models.tasks  # noqa: F401
