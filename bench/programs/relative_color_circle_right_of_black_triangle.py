# "What color is the circle to the right of the black triangle?"
# Find the black triangle, then the circle on the asked side of it, and name its color.
OPTIONS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    anchors = image.find("black triangle")
    if not anchors:
        return "none"
    anchor = anchors[0]
    for patch in image.find("circle"):
        if patch.horizontal_center > anchor.horizontal_center:
            return patch.best_text_match(OPTIONS)
    return "none"
