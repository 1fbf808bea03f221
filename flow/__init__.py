"""colcomb: column combining for sparse neural networks on FPGA systolic arrays."""

from colcomb.core.errors import ColcombError

__version__ = "0.1.0"
__all__ = ["ColcombError", "__version__"]
