"""python -m mrhooker"""
from mrhooker.cli import script

script()
