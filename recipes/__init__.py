"""Training recipes as pure functions: the BiT HyperRule and the learning-rate schedules.

Every recipe number lives here or in ``configs/``; ``datamodules/`` (the HyperRule's
resolution), ``lightning_modules/`` (its schedule, the upstream rule) and ``conversion/`` (storage
caps large enough for it) read it, so it sits at the bottom of the import order and imports
nothing of the project.
"""
