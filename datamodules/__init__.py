"""DataModules: FFCV betons → Lightning loaders (upstream, downstream, OOD evaluation).

Pipelines, seeded augmentation, resumable train loaders, exact sharded eval loaders; the betons
come from `conversion`, the OOD releases are read and scored by `ood`.
"""
