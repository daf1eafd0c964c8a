# "Which shape is closest to the left of the circle?" -- a spatial relation between patches.
# Positions are frame pixels with the origin at the top-left: a smaller horizontal_center is
# further left.
# Catalog: edgefmp/data/demo_catalog.yaml (bundled) or models/catalog.yaml (the zoo, in a checkout).
OTHER_SHAPES = ["rectangle", "triangle"]


def execute_command(image):
    circles = image.find("circle")
    if not circles:
        return "no circle"
    circle = circles[0]
    on_the_left = []
    for shape in OTHER_SHAPES:
        for patch in image.find(shape):
            if patch.horizontal_center < circle.horizontal_center:
                on_the_left.append(patch)
    if not on_the_left:
        return "nothing"
    nearest = max(on_the_left, key=lambda patch: patch.horizontal_center)
    return nearest.label
