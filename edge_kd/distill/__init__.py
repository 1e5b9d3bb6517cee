"""Knowledge distillation to a target's size budget: losses, teacher-output cache, budget-driven
sizing, trainer (with resume and DDP). Submodules import torch; this package file does not."""
