"""Knowledge distillation to a target's size budget: losses, teacher-output cache, budget-driven
sizing, trainer (with resume and DDP). Submodules import torch; this package file does not."""

#: Defaults of the KD loss, defined once: the recipe's ``[distill] temperature`` / ``alpha`` and the
#: losses that take them start from these.
KD_TEMPERATURE = 4.0
KD_ALPHA = 0.9
