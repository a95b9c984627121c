"""``python -m seglab`` (also what ``torchrun -m seglab`` runs)."""

import sys

from seglab.cli import main

sys.exit(main())
