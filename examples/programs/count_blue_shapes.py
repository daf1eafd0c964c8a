# "How many blue shapes are there?" -- one detection per shape kind, one colour check per shape.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    count = 0
    for shape in SHAPES:
        for patch in image.find(shape):
            if patch.verify_property(shape, "blue"):
                count += 1
    return count
