# "What shape is the green object?"
# Look for each shape and verify its colour; the first verified one answers.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    for shape in SHAPES:
        for patch in image.find(shape):
            if patch.verify_property(shape, "green"):
                return shape
    return "none"
