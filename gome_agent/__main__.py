import sys

from gome_agent.cli import main

sys.exit(main())
