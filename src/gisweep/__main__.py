import sys

from gisweep.cli import main

sys.exit(main())
