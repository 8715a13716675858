"""Training recipes as pure functions: the BiT HyperRule and the learning-rate schedules.

Every recipe number lives here or in ``configs/``; both ``datamodules/`` (the HyperRule's
resolution) and ``lightning_modules/`` (its schedule, the upstream rule) read it, so it sits
below both in the import order and imports nothing of the project.
"""
