# "Are there exactly two green shapes?"
# Detect each kind of shape and count those verified green.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    green = 0
    for shape in SHAPES:
        for patch in image.find(shape):
            if patch.verify_property(shape, "green"):
                green += 1
    return bool_to_yesno(green == 2)  # noqa: F821
