# "How many blue shapes are there?" -- one detection per shape kind, one colour check per shape.
# Catalog: edgefmp/data/demo_catalog.yaml (bundled) or models/catalog.yaml (the zoo, in a checkout).
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    count = 0
    for shape in SHAPES:
        for patch in image.find(shape):
            if patch.verify_property(shape, "blue"):
                count += 1
    return count
