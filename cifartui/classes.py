"""Class metadata that needs no torch: CIFAR-100's 20 superclasses (the official coarse labels)."""

from __future__ import annotations

CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}

SUPERCLASS_OF: dict[str, str] = {fine: coarse for coarse, fines in CIFAR100_SUPERCLASSES.items() for fine in fines}


def superclass_order(class_names: list[str]) -> list[int] | None:
    """Class indices grouped by CIFAR-100 superclass (people together, trees together ...), or None
    when the names are not CIFAR-100's (a subset is fine: unknown names go last)."""
    if not any(n in SUPERCLASS_OF for n in class_names):
        return None
    coarse = list(CIFAR100_SUPERCLASSES)
    rank = {n: (coarse.index(SUPERCLASS_OF[n]), CIFAR100_SUPERCLASSES[SUPERCLASS_OF[n]].index(n)) for n in class_names if n in SUPERCLASS_OF}
    return sorted(range(len(class_names)), key=lambda i: rank.get(class_names[i], (len(coarse), i)))
