"""python -m segments.bench.generate OUT [--scale S|M|L] ...: see segments.bench.generate.main."""
from . import main

main()
