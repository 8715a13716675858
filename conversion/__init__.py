"""Conversion: raw downloads → FFCV betons + sidecar manifests, nested subset index files.

``python -m conversion {imagenet21k,imagenet1k-train,imagenet1k-val,folder,subsets}`` (docs/data-conversion.md):
- `conversion.sources` — the raw downloads as users have them (21k tars/folders, 1k train/val + devkit/CSV).
- `conversion.beton`   — labelled images → .beton + manifest (atomic, decode pre-pass, idempotent).
- `conversion.subsets` — nested, seeded subset index files beside a beton.
- `conversion.convert` — the command line (also ``python -m conversion.convert``).
- `conversion.files`   — atomic writes, sha256; `conversion.errors` — InputError (one-line start-up refusals).

Nothing is imported here, so that importing a helper never pulls in FFCV.
"""
