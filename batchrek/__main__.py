import sys

from batchrek.cli import main

sys.exit(main())
