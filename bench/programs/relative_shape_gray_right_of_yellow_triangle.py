# "What shape is the gray object to the right of the yellow triangle?"
# Find the yellow triangle, then the gray on the asked side of it, and name its shape.
OPTIONS = ["circle", "rectangle", "triangle"]


def execute_command(image):
    anchors = image.find("yellow triangle")
    if not anchors:
        return "none"
    anchor = anchors[0]
    for patch in image.find("gray"):
        if patch.horizontal_center > anchor.horizontal_center:
            return patch.best_text_match(OPTIONS)
    return "none"
