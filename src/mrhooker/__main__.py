"""python -m mrhooker"""
import sys

from mrhooker.cli import main

sys.exit(main())
