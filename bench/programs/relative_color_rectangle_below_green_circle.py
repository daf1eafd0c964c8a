# "What color is the rectangle below the green circle?"
# Find the green circle, then the rectangle on the asked side of it, and name its color.
OPTIONS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    anchors = image.find("green circle")
    if not anchors:
        return "none"
    anchor = anchors[0]
    for patch in image.find("rectangle"):
        if patch.vertical_center > anchor.vertical_center:
            return patch.best_text_match(OPTIONS)
    return "none"
