"""The real ImageNet-1k classes of the miniature study.

Chosen so that every OOD benchmark keeps at least four of them, through the real class
correspondences (see docs/benchmarks-layouts.md for the sources):

- ImageNet-A: its 200 wnids (timm's ``imagenet_a_synsets.txt``).
- ObjectNet: ``objectnet_to_imagenet_1k.json`` entries Banana, Lemon, Umbrella, Toaster,
  Candle, Chair ("barber chair; folding chair; rocking chair, rocker": two of our classes
  map to one ObjectNet class) and Bicycle ("mountain bike, ...; bicycle-built-for-two, ...").
- ImageNet-Vid-Robust: its 30 classes' ImageNet classes (imagenet-testbed's
  ``rev_class_idx_map.json``): bird, dog, domestic cat, bear, elephant, airplane, bus,
  car, watercraft, bicycle.
- YouTube-BB-Robust: the same animals and vehicles plus umbrella (its ImageNet mapping
  file was not available to check; the classes are the YTBB names that have an obvious
  ImageNet counterpart).
- ImageNet-C and ImageNet-V2 cover all 1,000 classes.

Any prefix of 8 still gives each benchmark at least 4 classes (the quickstart may use one).
"""
from __future__ import annotations

MINIATURE_WNIDS: tuple[str, ...] = (
    "n01531178",  # goldfinch               A, Vid bird, YTBB bird
    "n07753592",  # banana                  A, ObjectNet Banana
    "n02099601",  # golden retriever        A, Vid dog, YTBB dog
    "n04099969",  # rocking chair           A, ObjectNet Chair
    "n02690373",  # airliner                A, Vid airplane, YTBB airplane
    "n07749582",  # lemon                   A, ObjectNet Lemon
    "n03792782",  # mountain bike           ObjectNet Bicycle, Vid bicycle, YTBB bicycle
    "n04507155",  # umbrella                A, ObjectNet Umbrella, YTBB umbrella
    "n03376595",  # folding chair           ObjectNet Chair (many-to-one with rocking chair)
    "n02123394",  # Persian cat             A, Vid domestic_cat, YTBB cat
    "n04442312",  # toaster                 A, ObjectNet Toaster
    "n04146614",  # school bus              A, Vid bus, YTBB bus
    "n02948072",  # candle                  A, ObjectNet Candle
    "n02133161",  # American black bear     A, Vid bear, YTBB bear
    "n03594945",  # jeep                    A, Vid car, YTBB car
    "n01614925",  # bald eagle              A, Vid bird, YTBB bird
    "n02951358",  # canoe                   A, Vid watercraft, YTBB boat
    "n02504458",  # African elephant        A, Vid elephant, YTBB elephant
)
