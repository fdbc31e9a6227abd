"""Values the storage format and the kernels that read it agree on."""
from __future__ import annotations

import numpy as np

NO_DAY = np.int64(-(2**62))

VISIT_COMPLETED = 1
VISIT_BOOKED = 2
LAYBY_OPEN = 1
