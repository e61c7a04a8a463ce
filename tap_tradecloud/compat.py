"""What differs between the Python versions the package supports."""

import sys

if sys.version_info >= (3, 12):
    from typing import override
else:  # typing_extensions is a dependency below 3.13
    from typing_extensions import override

__all__ = ["override"]
