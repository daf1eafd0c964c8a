# "What color is the triangle to the left of the red circle?"
# Find the red circle, then the triangle on the asked side of it, and name its color.
OPTIONS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    anchors = image.find("red circle")
    if not anchors:
        return "none"
    anchor = anchors[0]
    for patch in image.find("triangle"):
        if patch.horizontal_center < anchor.horizontal_center:
            return patch.best_text_match(OPTIONS)
    return "none"
