"""python -m nf: the same as the ``nf`` command."""

import sys

from nf.cli import main

sys.exit(main())
