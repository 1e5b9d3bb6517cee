"""Student families (text, image, tabular/CTR) with one size knob each; see base.StudentFamily.

Importing this package does not import torch; the family modules do."""
from edge_kd.models.students.base import FAMILIES, StudentFamily, knob_values, make_family

__all__ = ["FAMILIES", "StudentFamily", "knob_values", "make_family"]
